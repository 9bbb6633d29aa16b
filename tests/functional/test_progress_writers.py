"""A purge and a metadefs load publish their progress too (issue 26, point 1; docs/progress.md).

Each runs as its module in a process of its own, and this process reads what it
publishes, as glance_db_wait and an operator's glance_db_facts do: a purge names each
table it purges (step k of n) and counts its rows up to the plan's total; a metadefs
load names each kind of row it writes. A run killed part-way is seen as stale, naming
its module, and that module's next run clears the record even with nothing to do.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import metadefs, phases, progress, purge, state
from test_metadefs import glance_files, glance_manage  # noqa: F401  pylint: disable=unused-import  # fixtures
from test_progress import RUN_PHASE, facts
import test_purge

IMAGES = 5000  # about 8,300 soft-deleted rows in each image child table
BATCH = 100  # rows per purge batch: many batches, so many counts to see
STEPS = ("image_properties", "image_tags", "image_locations", "image_members", "tasks")
RUNNING = "A run is in progress (%s on host "


def module(name, args, kill=None, env=None):
    """glance_db_NAME as Ansible runs it, in a process of its own (run_phase.py)."""
    return subprocess.Popen([sys.executable, RUN_PHASE, "module", name, json.dumps(args)] + ([kill] if kill else []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))


def result_of(run):
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, (out[-2000:], err[-2000:])
    result = json.loads(out.strip().splitlines()[-1])
    assert not result.get("failed"), result
    return result


def frozen(name, args, kill, tmp_path):
    """glance_db_NAME stopped (SIGSTOP) at the kill point, once it is there."""
    mark = tmp_path / ("%s.stopped" % name)
    run = module(name, args, "stop-" + kill, env={"GLANCE_TEST_KILL_MARK": str(mark)})
    deadline = time.monotonic() + 120
    while not mark.exists():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    time.sleep(0.2)  # the signal lands just after the mark is written
    return run


def hold_a_row(db, table, stop):
    """An API transaction holding one row the purge wants, mid-table, until ``stop`` (at most 20 s)."""
    held = threading.Event()

    def hold():
        with db.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM %s WHERE deleted = 1 ORDER BY id" % table))]
            conn.execute(sa.text("SELECT id FROM %s WHERE id = :id FOR UPDATE" % table), {"id": ids[len(ids) // 2]})
            held.set()
            stop.wait(20)
            conn.rollback()
    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(30)
    return thread


@pytest.mark.parametrize("engine_name", ["sqlite", "mysql"])
def test_a_purge_publishes_each_table_and_its_rows(make_database, engine_name):
    db = make_database(engine_name)
    phases.run(db.engine, "sync")
    test_purge.seed(db, datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None),
                    images=IMAGES, tasks=IMAGES // 2)
    args = {"connection": db.url, "age_in_days": 1, "max_rows": -1, "batch_size": BATCH, "lock_wait_timeout": 1}
    planned = purge.run(purge.Purge(db.engine, age_in_days=1, max_rows=-1), check_mode=True)["rows"]
    # On MariaDB an API transaction holds a row of image_tags a while: the purge waits, and says so.
    stop = threading.Event()
    holder = hold_a_row(db, "image_tags", stop) if engine_name == "mysql" else None
    run = module("purge", args)
    seen, during = [], None
    try:
        while run.poll() is None:
            # The purge runs in short slices, each after a stop longer than PUBLISH_SECONDS, so
            # each slice publishes its rows however fast or loaded the machine is.
            run.send_signal(signal.SIGSTOP)
            time.sleep(progress.PUBLISH_SECONDS + 0.1)
            record = state.read_progress_direct(db.url)  # another process, its own connection
            if record:
                seen.append(record)
                if holder and during is None and record.get("throttled"):
                    during = facts(db.url)["glance_db"]["run"]  # facts, a third process, meanwhile
                    stop.set()
            run.send_signal(signal.SIGCONT)
            time.sleep(0.1)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGCONT)
        stop.set()
        if holder:
            holder.join()
    result = result_of(run)
    assert result["rows"] == planned and result["changed"]

    assert seen and all(r["phase"] == "purge" and r["state"] == "running" and r["pid"] == run.pid for r in seen)
    steps = [r for r in seen if r["step"]]
    assert all(r["step"] == "table" and r["count"] == len(STEPS) and STEPS[r["index"] - 1] == r["name"]
               and r["rows_total"] == planned[r["name"]] for r in steps), steps[:3]
    assert [r["index"] for r in steps] == sorted(r["index"] for r in steps)  # in Glance's order
    # Each table named, seen running or over (tasks, the last and quickest, may end between two reads).
    names = set(r["name"] for r in steps) | set(f["name"] for r in seen for f in r.get("finished") or ())
    assert set(STEPS[:-1]) <= names <= set(STEPS), names
    intermediate = set((r["name"], r["rows_done"]) for r in steps if 0 < r["rows_done"] < r["rows_total"])
    assert len(intermediate) >= 4, sorted(intermediate)
    assert any(" rows/s" in r["line"] for r in steps), [r["line"] for r in steps]
    for done in seen[-1].get("finished") or ():  # each step over reached its total
        assert done["rows_done"] == done["rows_total"] == planned[done["name"]], done
    if holder:
        assert any((r["throttled"] or "").startswith("lock wait: retrying a purge batch after error 1205") and r["name"] == "image_tags" for r in steps)
        assert during["progress"]["phase"] == "purge" and during["progress"]["state"] == "running", during
        assert during["msg"].startswith(RUNNING % "purge") and "purge: table 2 of 5, image_tags: " in during["msg"]
    # Once over, nothing is published, and the facts show no run.
    assert state.read_progress_direct(db.url) is None
    assert facts(db.url)["glance_db"]["run"]["progress"] is None


def test_the_roles_purge_prints_each_table_as_it_goes(make_database, tmp_path):
    db = make_database("mysql")
    phases.run(db.engine, "sync")
    test_purge.seed(db, datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None),
                    images=IMAGES, tasks=IMAGES // 2)
    planned = purge.run(purge.Purge(db.engine, age_in_days=1, max_rows=-1), check_mode=True)["rows"]
    playbook = tmp_path / "purge.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"glance_db_connection": db.url, "glance_db_progress_poll": 0.2, "glance_db_purge_age_in_days": 1,
                 "glance_db_purge_batch_size": BATCH},
        "tasks": [{"ansible.builtin.include_role": {"name": "openstack_ops.glance.glance_db", "tasks_from": "purge"}}],
    }]))
    # An API transaction holds a row mid-image_tags: the purge waits there (5 s a try, then again),
    # with rows done part-way, until a few polls of the role have seen it.
    stop = threading.Event()
    holder = hold_a_row(db, "image_tags", stop)
    try:
        play = subprocess.Popen(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path),
            env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
        deadline = time.monotonic() + 120
        while play.poll() is None and time.monotonic() < deadline:
            record = state.read_progress_direct(db.url)
            if record and record.get("name") == "image_tags" and record.get("throttled"):
                time.sleep(4)  # glance_db_wait polls every 0.2 s, each poll about a second
                break
            time.sleep(0.1)
    finally:
        stop.set()
        holder.join()
    stdout, stderr = play.communicate(timeout=600)
    done = subprocess.CompletedProcess(play.args, play.returncode, stdout, stderr)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])
    printed = re.findall(r"\] purge: table (\d) of 5, (\w+): ([\d,]+)/([\d,]+) \(", done.stdout)
    assert printed, done.stdout
    for index, name, rows, total in printed:
        assert STEPS[int(index) - 1] == name and int(total.replace(",", "")) == planned[name], done.stdout
    # A poll runs glance_db_facts on the host (about a second): a few lines per table at most.
    assert len(set(name for _index, name, _rows, _total in printed)) >= 3, done.stdout
    assert any(0 < int(rows.replace(",", "")) < planned[name] for _index, name, rows, _total in printed
               if name == "image_tags"), done.stdout
    # The task ends with the module's own result.
    assert "Deleted %d row(s) from table image_tags" % planned["image_tags"] in done.stdout, done.stdout


@pytest.mark.parametrize("engine_name", ["sqlite", "mysql"])
def test_a_metadefs_load_publishes_each_kind_of_row(make_database, glance_files, tmp_path, engine_name):  # noqa: F811
    db = make_database(engine_name)
    phases.run(db.engine, "sync")
    planned = metadefs.load(db.engine, str(glance_files), check_mode=True).changes["created"]
    kinds = [kind for kind in ("namespaces", "resource_types", "resource_type_associations", "properties", "objects",
                               "tags") if planned[kind]]
    # Stopped at its 20th property: the record is the one a poll sees there.
    run = frozen("metadefs", {"connection": db.url, "path": str(glance_files)},
                 "before-statement:INSERT INTO metadef_properties:20", tmp_path)
    try:
        record = state.read_progress_direct(db.url)
        during = facts(db.url)["glance_db"]["run"]
    finally:
        run.send_signal(signal.SIGCONT)
    result = result_of(run)
    assert result["changed"] and result["counts"]["properties"] == len(planned["properties"])

    index = kinds.index("properties") + 1
    assert record["phase"] == "metadefs" and record["state"] == "running" and record["pid"] == run.pid, record
    assert (record["step"], record["name"], record["index"], record["count"], record["rows_total"]) == (
        "create", "properties", index, len(kinds), len(planned["properties"])), record
    assert record["line"].startswith("metadefs: create %d of %d, properties: " % (index, len(kinds))), record["line"]
    # The kinds written before, each at its total.
    assert [(f["name"], f["rows_done"], f["rows_total"]) for f in record["finished"]] == [
        (kind.replace("_", " "), len(planned[kind]), len(planned[kind])) for kind in kinds[:index - 1]]
    assert during["progress"]["step"] == "create" and during["msg"].startswith(RUNNING % "metadefs"), during
    assert state.read_progress_direct(db.url) is None


@pytest.mark.parametrize("engine_name", ["sqlite", "mysql"])
def test_a_killed_writer_is_stale_and_its_next_run_with_nothing_to_do_clears_it(make_database, glance_files,  # noqa: F811
                                                                                tmp_path, engine_name):
    db = make_database(engine_name)
    phases.run(db.engine, "sync")
    test_purge.seed(db, datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None))
    metadefs.load(db.engine, str(glance_files))
    load = {"connection": db.url, "path": str(glance_files)}
    for name, args, kill, again in (
            ("purge", {"age_in_days": 1, "max_rows": -1}, "before-statement:DELETE FROM image_tags",
             lambda: purge.run(purge.Purge(db.engine, age_in_days=1000, max_rows=-1))["changed"]),
            # The every-deploy load, read with the driver alone when it has nothing to do.
            ("metadefs", {"state": "absent"}, "before-statement:DELETE FROM metadef_properties",
             lambda: result_of(module("metadefs", load))["changed"])):
        run = frozen(name, dict(args, connection=db.url), kill, tmp_path)
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=60)
        found = facts(db.url)["glance_db"]["run"]
        assert found["progress"]["phase"] == name and found["progress"]["state"] == "stale", found
        assert "Run glance_db_%s again to finish it." % name in found["msg"], found["msg"]
        # Nothing left to purge (a far older age) or to load (the unload was rolled back): no change,
        # yet the record is gone.
        assert again() is False
        assert state.read_progress_direct(db.url) is None, name
        assert facts(db.url)["glance_db"]["run"]["msg"] is None
