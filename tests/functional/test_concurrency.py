"""Many migrators at once: exactly one does the work, the others find nothing to do.
A migrator killed part-way leaves a database the next run finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (
    connection as db_connection, phases, state as db_state,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.lock import migration_lock
from parity import HEAD, differences
from seed import seed_pre_ocata, visibilities

RUN_PHASE = str(Path(__file__).resolve().parent / "run_phase.py")
RACERS = 3


def _race(url, phase, args=None):
    start_at = time.time() + 1.5  # every process connected and waiting by then
    procs = [subprocess.Popen([sys.executable, RUN_PHASE, url, phase, json.dumps(args or {}),
                               str(start_at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for racer in range(RACERS)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.parametrize("phase_sequence", [("sync",), ("expand", "migrate", "contract")],
                         ids=["sync", "expand-migrate-contract"])
def test_simultaneous_runs_serialize(online_database, phase_sequence):
    db = online_database
    phases.run(db.engine, "sync", version="mitaka02")
    expected = seed_pre_ocata(db, count=200)
    for phase in phase_sequence:
        results = _race(db.url, phase, {"batch_size": 10} if phase in ("migrate", "sync") else None)
        assert [r["error"] for r in results] == [None] * RACERS, results
        assert sorted(r["changed"] for r in results) == [False] * (RACERS - 1) + [True], results
    assert visibilities(db) == expected
    assert differences(db.engine, db.engine_name, HEAD) == ""
    if db.engine_name == "sqlite":
        assert not list(Path(db.engine.url.database).parent.glob("*.migration-lock"))


# Each process takes the SQLite lock ROUNDS times and adds one to a counter
# file while it holds it: a lost update means two held the lock at once (as
# when a waiter locks a file its holder already removed).
LOCK_WORKER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.lock import _file_lock
database, counter, rounds, start_at = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
time.sleep(max(0.0, start_at - time.time()))
for _ in range(rounds):
    with _file_lock(database, 60):
        with open(counter) as handle:
            value = int(handle.read())
        time.sleep(0.001)
        with open(counter, "w") as handle:
            handle.write(str(value + 1))
"""


def test_sqlite_lock_excludes_and_leaves_no_file(tmp_path):
    database, counter = tmp_path / "glance.sqlite", tmp_path / "counter"
    counter.write_text("0")
    workers, rounds = 4, 60
    start_at = time.time() + 1.0
    procs = [subprocess.Popen([sys.executable, "-c", LOCK_WORKER,
                               str(Path(__file__).resolve().parents[2] / ".build" / "collections"),
                               str(database), str(counter), str(rounds), str(start_at)],
                              stderr=subprocess.PIPE, text=True) for worker in range(workers)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert int(counter.read_text()) == workers * rounds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter"]


def test_killed_migrate_resumes(online_database):
    db = online_database
    phases.run(db.engine, "sync", version="mitaka02")
    expected = seed_pre_ocata(db, count=20000)
    phases.run(db.engine, "expand")

    proc = subprocess.Popen([sys.executable, RUN_PHASE, db.url, "migrate", json.dumps({"batch_size": 20})],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        done = db.scalar("SELECT COUNT(*) FROM images WHERE visibility IS NOT NULL")
        if done >= 2000:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = db.scalar("SELECT COUNT(*) FROM images WHERE visibility IS NOT NULL")
    assert 0 < done < 20000, "the kill should land part-way (%d rows done)" % done

    resumed = phases.run(db.engine, "migrate")
    assert resumed.migrated[0]["remaining"] == 0
    phases.run(db.engine, "contract")
    assert visibilities(db) == expected


def test_role_expand_from_several_hosts_at_once(online_database, tmp_path):
    """Operators in several terminals (or plays) run the role's expand entry
    point together: the database is expanded and migrated exactly once."""
    db = online_database
    phases.run(db.engine, "sync", version="mitaka02")
    expected = seed_pre_ocata(db, count=200)
    playbook = tmp_path / "expand.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [
            {"name": "Expand and migrate", "ansible.builtin.include_role": {
                "name": "openstack_ops.glance.glance_db", "tasks_from": "expand"}},
            {"name": "Write what this run changed", "ansible.builtin.copy": {
                "dest": "{{ out }}", "mode": "0600",
                "content": "{{ {'expand': glance_db_expand_result.changed,"
                           " 'migrate': glance_db_migrate_result.changed} | to_json }}"}},
        ]}]))
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    procs = []
    for host in range(RACERS):  # started together, as a play's hosts would be
        out = tmp_path / ("host%d.json" % host)
        procs.append((out, subprocess.Popen(
            [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook),
             "-e", json.dumps({"glance_db_connection": db.url, "out": str(out),
                               "glance_db_migrate_batch_size": 10})],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)))
    results = []
    for out, proc in procs:
        log = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, log[-3000:]
        results.append(json.loads(out.read_text()))
    assert sorted(r["expand"] for r in results) == [False] * (RACERS - 1) + [True], results
    assert sorted(r["migrate"] for r in results) == [False] * (RACERS - 1) + [True], results
    phases.run(db.engine, "contract")
    assert visibilities(db) == expected


def test_a_sync_waits_for_a_first_sync_under_way_instead_of_refusing(make_database):
    """On MySQL a first sync's tables show before its alembic_version rows (its DDL
    commits at once): a second run that comes meanwhile must wait for the lock and
    judge the database then, not refuse it as "not a Glance database"."""
    db = make_database("mysql")
    second = db_connection.create_engine(db_connection.resolve_url(db.url))
    outcome = {}

    def run_second():
        try:
            outcome["ok"] = phases.run(second, "sync", lock_timeout=60)
        except Exception as exc:  # recorded: the assertion below says what it was
            outcome["error"] = exc

    try:
        with migration_lock(db.engine, 10):  # the first run, half way through its sync
            db.execute("CREATE TABLE images (id VARCHAR(36) PRIMARY KEY)")
            thread = threading.Thread(target=run_second)
            thread.start()
            thread.join(3)
            assert thread.is_alive(), "the second run did not wait for the lock: %r" % outcome
            # The first run ends; here it leaves the database empty, so the second has all to do.
            db.execute("DROP TABLE images")
        thread.join(120)
        assert "error" not in outcome, outcome
        assert db_state.read(db.engine).version_rows == [HEAD]
    finally:
        second.dispose()
