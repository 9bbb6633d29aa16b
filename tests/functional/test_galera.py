"""On a 3-node Galera cluster (scripts/galera): facts, guards, fresh reads and the
cluster-wide migration lock (docs/galera.md). Marked ``galera``: scripts/test runs
these in its galera stage, one test at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import galera
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.leftovers import LEASE_DATABASE
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (
    lock as db_lock, phases, state as db_state,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import LockLost
from parity import HEAD, differences
from seed import visibilities

pytestmark = pytest.mark.galera

RUN_PHASE = str(Path(__file__).resolve().parent / "run_phase.py")
RESULTS = galera.REPO / ".build" / "galera-results"


@pytest.fixture(autouse=True)
def watchdog():
    """Fail a test that hangs (a stalled cluster) after 8 minutes, and leave the
    cluster healthy for the next one."""
    def bark(signum, frame):
        raise TimeoutError("Galera test ran past 480 s")

    previous = signal.signal(signal.SIGALRM, bark)
    signal.alarm(480)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if galera.script("status", timeout=60).returncode != 0:
            galera.restore_cluster()


@pytest.fixture
def gdb():
    galera.require_cluster()
    db = galera.GaleraDatabase()
    yield db
    db.drop()


def record(name, data):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / (name + ".json")).write_text(json.dumps(data, indent=1))
    print(name, json.dumps(data))


def test_the_script_refuses_ports_another_cluster_answers(tmp_path):
    """A second checkout's cluster on the same ports is refused, not joined: its
    tests would run against the wrong cluster and kill the wrong pids."""
    galera.require_cluster()
    other = subprocess.run(["bash", str(galera.SCRIPT), "start"], capture_output=True, text=True, timeout=60,
                           check=False,
                           env=dict(os.environ, GALERA_PORT_OFFSET=str(galera.OFFSET), GALERA_DIR=str(tmp_path)))
    assert other.returncode == 1, other.stdout + other.stderr
    assert "is taken by a server with datadir" in other.stderr
    assert "GALERA_PORT_OFFSET" in other.stderr
    assert not list(tmp_path.iterdir()), "nothing is written for a refused start"


def test_facts_report_the_cluster_through_each_node(gdb, tmp_path):
    phases.run(gdb.engine(1), "sync", version="mitaka02")
    results = galera.run_modules(tmp_path, [("facts", {"connection": gdb.url(n)}) for n in galera.NODES])
    for node, result in zip(galera.NODES, results):
        facts = result["glance_db"]["galera"]
        assert facts["node_name"] == "node%d" % node, facts
        assert facts["cluster_size"] == 3 and facts["cluster_status"] == "Primary", facts
        assert facts["local_state"] == "Synced" and facts["ready"] and facts["writable"], facts
        assert facts["osu_method"] == "TOI", facts
        assert facts["sync_wait"] & 1 == 1, "reads must wait for the cluster: %s" % facts
        assert 0.0 <= facts["flow_control_paused"] <= 1.0, facts
        assert result["glance_db"]["revisions"] == ["mitaka02"], result
    # Not Galera: the key is there, and null.
    plain = galera.run_modules(tmp_path, [("facts", {"connection": "sqlite:///%s/x.db" % tmp_path})])[0]
    assert plain["glance_db"]["galera"] is None


def test_a_read_through_any_node_sees_a_phase_run_through_another(gdb):
    phases.run(gdb.engine(1), "sync", version="mitaka02")
    galera.seed_pre_ocata_fast(gdb, 2000)
    for node in (2, 3, 1):
        # A phase through one node; at once, the state through the next one.
        phase = {2: "expand", 3: "migrate", 1: "contract"}[node]
        phases.run(gdb.engine(node), phase, galera_lock_ttl=10)
        after = db_state.read(gdb.engine(node % 3 + 1))
        assert after.galera["sync_wait"] & 1
        expected = {"expand": "expand", "migrate": "expand", "contract": "contract"}[phase]
        assert after.current(expected) == galera_head(expected), (phase, after.version_rows)
    # The driver-only read (glance_db_facts) waits for the cluster too.
    direct = db_state.read_direct(gdb.url(3))
    assert direct.galera["sync_wait"] & 1 and direct.next_step == "none"


def galera_head(branch):
    from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import GRAPH
    return GRAPH.heads[branch]


class _Through(object):
    """seed.py's view of a database: an engine."""

    def __init__(self, gdb, node):
        self.engine = gdb.engine(node)

    def rows(self, sql):
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_writing_phases_refuse_a_desynced_node_or_a_small_cluster(gdb, tmp_path):
    phases.run(gdb.engine(1), "sync", version="mitaka02")
    galera.admin(3, "SET GLOBAL wsrep_desync = ON")
    try:
        results = galera.run_modules(tmp_path, [
            ("expand", {"connection": gdb.url(3)}),
            ("expand", {"connection": gdb.url(2), "galera_min_cluster_size": 4}),
            ("facts", {"connection": gdb.url(3)}),
        ])
    finally:
        galera.admin(3, "SET GLOBAL wsrep_desync = OFF")
    galera.assert_one_clear_msg(results[0], "node3", "not Primary and Synced", "Synced node")
    galera.assert_one_clear_msg(results[1], "3 node(s)", "galera_min_cluster_size 4")
    assert results[2]["glance_db"]["galera"]["local_state"] != "Synced", results[2]
    assert gdb.rows("SELECT version_num FROM alembic_version") == [("mitaka02",)]
    # Check mode plans through any node; a Synced node with enough peers writes.
    ok = galera.run_modules(tmp_path, [("expand", {"connection": gdb.url(2), "galera_min_cluster_size": 3})])
    assert ok[0]["changed"] is True and not ok[0].get("failed"), ok


def test_the_lock_leaves_nothing_in_the_glance_database(gdb, tmp_path):
    """From an empty database to the heads: the Glance schema is real Glance's at every
    step, the lease row is gone after each run, and real glance-manage agrees."""
    results = galera.run_modules(tmp_path, [
        ("sync", {"connection": gdb.url(1), "version": "mitaka02"}),
        ("expand", {"connection": gdb.url(2)}),
        ("migrate", {"connection": gdb.url(3)}),
        ("contract", {"connection": gdb.url(1)}),
    ])
    assert [r.get("changed") for r in results] == [True, True, False, True], results
    leases = galera.admin(2, "SELECT COUNT(*) FROM %s.leases WHERE name = :n"
                          % LEASE_DATABASE, {"n": gdb.name})
    assert leases == [(0,)]
    tables = [r[0] for r in gdb.rows("SHOW TABLES", node=3)]
    assert "leases" not in tables and not any("lock" in t for t in tables), tables
    assert differences(gdb.engine(3), "mysql", HEAD) == ""
    # Real Glance 33.0.0's virtualenv (made once, reused: tests/parity/oracle-venv).
    venv = subprocess.run(["bash", str(galera.REPO / "tests" / "parity" / "oracle-venv")],
                          capture_output=True, text=True, timeout=900, check=False)
    assert venv.returncode == 0, venv.stderr[-2000:]
    manage = Path(venv.stdout.strip().splitlines()[-1]) / "bin" / "glance-manage"
    conf = tmp_path / "glance.conf"
    conf.write_text("[database]\nconnection = %s\n" % gdb.url(2))
    check = subprocess.run([str(manage), "--config-file", str(conf), "db", "check"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_user_without_the_lock_database_is_told_the_grant(gdb, tmp_path):
    user = "g%s" % gdb.name[-10:]
    galera.admin(1, ["CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY 'pw-%s'" % (user, user),
                     "GRANT ALL PRIVILEGES ON %s.* TO '%s'@'127.0.0.1'" % (gdb.name, user)])
    try:
        url = "mysql+pymysql://%s:pw-%s@127.0.0.1:%d/%s" % (user, user, galera.port(2), gdb.name)
        result = galera.run_modules(tmp_path, [
            ("sync", {"connection": url, "version": "mitaka02", "galera_lock_database": "glance_lock_" + user}),
        ])[0]
    finally:
        galera.admin(1, "DROP USER '%s'@'127.0.0.1'" % user)
    galera.assert_one_clear_msg(result, "glance_lock_" + user, "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE")
    assert "pw-" not in json.dumps(result)
    assert gdb.rows("SHOW TABLES", node=1) == []


def _lease(gdb, node, seconds):
    return db_lock.GaleraLease(gdb.engine(node), seconds, LEASE_DATABASE)


def test_fencing_a_run_whose_lease_was_taken_stops_before_its_next_statement(gdb):
    lease = _lease(gdb, 1, 4)
    lease.acquire(10)
    try:
        with gdb.engine(1).connect() as conn:
            conn.execute(sa.text("SELECT 1"))  # holding: statements run
            # Another run takes the lease over, through another node.
            galera.admin(2, "UPDATE %s.leases SET holder = 'someone-else' WHERE name = :n"
                         % LEASE_DATABASE, {"n": gdb.name})
            time.sleep(2.5)  # a heartbeat (every 0.8 s) finds it
            with pytest.raises(LockLost, match="another run took the lease over"):
                conn.execute(sa.text("SELECT 1"))
    finally:
        lease.release()
    # Released: the engine runs statements again, unfenced.
    assert gdb.scalar("SELECT 1") == 1


def test_fencing_a_lease_that_could_not_be_renewed(gdb):
    lease = _lease(gdb, 1, 4)
    lease.acquire(10)
    try:
        lease.stop.set()  # the heartbeat stops, as in a run frozen (SIGSTOP) or cut off
        lease.thread.join()
        start = time.monotonic()
        with pytest.raises(LockLost, match="could not be renewed"):
            while True:
                gdb.scalar("SELECT 1")
                time.sleep(0.2)
        assert time.monotonic() - start < 4 + 4 + 1
    finally:
        lease.release()


def test_an_expired_lease_is_not_taken_while_its_holders_statement_runs(gdb):
    """The holder froze mid-statement: its lease expired, but its statement still
    runs; a taker waits until the statement has ended."""
    table = "%s.leases" % LEASE_DATABASE
    _lease(gdb, 1, 4)._ensure_table(gdb.engine(1).connect())
    galera.admin(1, "INSERT INTO %s VALUES (:n, 'frozen00holder00', 'node1', 0, UTC_TIMESTAMP(6), "
                    "UTC_TIMESTAMP(6) - INTERVAL 1 SECOND)" % table, {"n": gdb.name})
    statement = threading.Thread(target=galera.admin, args=(
        1, (db_lock.STATEMENT_TAG % "frozen00holder00") + "SELECT SLEEP(4)"))
    statement.start()
    time.sleep(0.5)
    taker = _lease(gdb, 1, 10)
    start = time.monotonic()
    taker.acquire(20)
    waited = time.monotonic() - start
    taker.release()
    statement.join()
    assert waited >= 3.0, "took the lease over while the holder's statement ran (%.1f s)" % waited
    record("takeover_waits_for_statement", {"waited_s": round(waited, 1), "statement_s": 4})


def _race(gdb, phase, args, nodes=galera.NODES):
    """Run ``phase`` at once through each node, each in a thread with its own engine
    (the lock is the cluster's: threads race as processes do, minus their start-up)."""
    engines = [gdb.engine(n) for n in nodes]
    barrier = threading.Barrier(len(nodes))
    results = [None] * len(nodes)

    def one(i):
        barrier.wait()
        try:
            outcome = phases.run(engines[i], phase, **args)
            results[i] = {"changed": outcome.changed, "error": None}
        except Exception as exc:  # counted, and shown by the assertion
            results[i] = {"changed": False, "error": "%s: %s" % (type(exc).__name__, exc)}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(nodes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    return results


RACES = int(os.environ.get("GLANCE_GALERA_RACES", "10"))
RACE_IMAGES = int(os.environ.get("GLANCE_GALERA_RACE_IMAGES", "20000"))


def test_three_way_races_through_three_nodes(tmp_path):
    """Each race: a fresh mitaka02 database with 20,000 images; glance_db_expand
    (which opens the data migration) started at once through nodes 1, 2 and 3.
    Exactly one changes, none fails, every node then takes writes. One more race
    of glance_db_sync on an empty database. Figures: benchmarks/results/galera_tests.md."""
    galera.require_cluster()
    figures = []
    for race in range(RACES + 1):
        db = galera.GaleraDatabase()
        try:
            phase = "expand" if race < RACES else "sync"
            if phase == "expand":
                phases.run(db.engine(1), "sync", version="mitaka02")
                expected = galera.seed_pre_ocata_fast(db, RACE_IMAGES)
            start = time.monotonic()
            results = _race(db, phase, {"galera_lock_ttl": 15})
            elapsed = time.monotonic() - start
            errors = [r["error"] for r in results if r["error"]]
            changed = sum(1 for r in results if r["changed"])
            galera.writable_everywhere(db.name)
            figures.append({"race": race, "phase": phase, "changed": changed, "failed": len(errors),
                            "seconds": round(elapsed, 1), "writable": True})
            assert errors == [], errors
            assert changed == 1, results
            if race == 0:  # once: the rest of the upgrade, and real Glance's schema
                phases.run(db.engine(2), "migrate")
                phases.run(db.engine(3), "contract")
                assert visibilities(_Db(db, 3)) == expected
                assert differences(db.engine(3), "mysql", HEAD) == ""
            elif phase == "expand":
                assert db_state.read(db.engine(3)).next_step == "migrate"
            else:
                assert differences(db.engine(3), "mysql", HEAD) == ""
        finally:
            db.drop()
    record("races", {"images": RACE_IMAGES, "runs": len(figures) * 3,
                     "races": len(figures), "changed_per_race": [f["changed"] for f in figures],
                     "failed": sum(f["failed"] for f in figures), "detail": figures})


class _Db(object):
    def __init__(self, gdb, node):
        self.gdb, self.node = gdb, node

    def rows(self, sql):
        return self.gdb.rows(sql, node=self.node)


def test_facts_report_a_stale_lease_of_a_stopped_run(gdb):
    """A run killed while it held the lease leaves its row until the lease expires and the
    next run takes it over: the facts report it, stale once expired, and name who held it."""
    facts = db_state.read(gdb.engine(2)).as_facts()
    assert facts["run"]["lease"] is None and facts["run"]["msg"] is None
    table = "%s.leases" % LEASE_DATABASE
    _lease(gdb, 1, 4)._ensure_table(gdb.engine(1).connect())
    galera.admin(1, "INSERT INTO %s VALUES (:n, 'killed00holder00', 'node1', 0, UTC_TIMESTAMP(6), "
                    "UTC_TIMESTAMP(6) - INTERVAL 1 SECOND)" % table, {"n": gdb.name})
    try:
        facts = db_state.read(gdb.engine(2)).as_facts()
        lease = facts["run"]["lease"]
        assert lease["stale"] is True and lease["holder"] == "killed00holder00" and lease["node"] == "node1"
        assert "lease of a run that stopped (node node1" in facts["run"]["msg"]
        taker = _lease(gdb, 2, 10)
        taker.acquire(20)  # the next writing run takes it over
        try:
            held = db_state.read(gdb.engine(3)).as_facts()["run"]["lease"]
            assert held["stale"] is False and held["holder"] == taker.token
        finally:
            taker.release()
        assert db_state.read(gdb.engine(1)).as_facts()["run"]["lease"] is None
    finally:
        galera.admin(1, "DELETE FROM %s WHERE name = :n" % table, {"n": gdb.name})
