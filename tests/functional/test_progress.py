"""Operators see what a long run is doing (issue 26, points 1-3; docs/progress.md).

The role's expand entry point runs glance_db_expand with async, and glance_db_wait prints
one line per poll: on 100,000 images at mitaka02 each of the three copies of images is
named and counted up to its total. Meanwhile glance_db_facts, run as its module in
another process, sees the run. A run killed (SIGKILL) part-way is seen as stale, naming
the module to run, and that module's next run clears it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
import yaml

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, state
from parity import differences
import run_phase
from seed import image_id

HERE = Path(__file__).resolve().parent
RUN_PHASE = str(HERE / "run_phase.py")
IMAGES = 100000
KILLED_IMAGES = 60000  # a copy of some seconds: the kill lands in it
POLL = 0.2  # seconds between the role's reads of the progress, and the watcher's
LINE = re.compile(r"\] expand: copy (\d+) of (\d+), (\w+): ([\d,]+)/([\d,]+) \((\d+) %\)")


def seed(db, count):
    """mitaka02 images, members and locations made by the server (the sequence engine): seconds."""
    from galera import seed_pre_ocata_fast

    class OneServer(object):
        def engine(self, _node):
            return db.engine
    phases.run(db.engine, "sync", version="mitaka02")
    return seed_pre_ocata_fast(OneServer(), count)


def facts(url, **args):
    """glance_db_facts as Ansible runs it, in a process of its own."""
    done = subprocess.run([sys.executable, RUN_PHASE, "module", "facts", json.dumps(dict(args, connection=url))],
                          capture_output=True, text=True, timeout=120, check=False)
    return json.loads(done.stdout.strip().splitlines()[-1])


def watch_facts(url, seen, stop):
    """glance_db_facts in a child forked from this process, as often as the role polls: a new
    interpreter per read kept a core busy for the whole expand it watches."""
    while not stop.wait(POLL):
        try:
            progress = json.loads(run_phase.run_module_forked("facts", json.dumps({"connection": url}))[1]
                                  .strip().splitlines()[-1])["glance_db"]["run"]["progress"]
        except (ValueError, KeyError, IndexError):
            continue  # a read that met the copy's swap: the next one
        if progress:
            seen.append(progress)


def test_the_roles_expand_shows_each_copy_and_facts_see_the_run(make_database, tmp_path):
    db = make_database("mysql")
    seed(db, IMAGES)
    playbook = tmp_path / "expand.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"glance_db_connection": db.url, "glance_db_progress_poll": POLL},
        "tasks": [{"ansible.builtin.include_role": {"name": "openstack_ops.glance.glance_db",
                                                    "tasks_from": "expand"}}],
    }]))
    seen, stop = [], threading.Event()
    watcher = threading.Thread(target=watch_facts, args=(db.url, seen, stop))
    watcher.start()
    try:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
            capture_output=True, text=True, timeout=900, check=False, cwd=str(tmp_path),
            env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-2000:])

    counts = {}  # copy -> the counts printed
    for index, count, table, rows, total, _percent in LINE.findall(done.stdout):
        assert (count, table, int(total.replace(",", ""))) == ("3", "images", IMAGES), done.stdout
        counts.setdefault(int(index), []).append(int(rows.replace(",", "")))
    assert sorted(counts) == [1, 2, 3], done.stdout
    assert re.search(r"expand: copy \d of 3, images: [\d,]+/100,000 \(\d+ %\), [\d,]+ rows/s, ETA \d+ (s|min)",
                     done.stdout), done.stdout
    for index in (1, 2, 3):  # seen done by a poll, or by the job's result if the run ended first
        assert re.search(r"expand: copy %d of 3, images: 100,000/100,000 \(100 %%\), done in \d+" % index,
                         done.stdout), done.stdout
    for index, printed in counts.items():
        intermediate = set(n for n in printed if 0 < n < IMAGES)
        assert len(intermediate) >= 5, (index, printed)
        assert printed == sorted(printed) and printed[-1] == IMAGES, (index, printed)  # it reaches its total

    # Another process saw the run while it lasted, each copy named by its table and revision.
    assert seen and all(p["state"] == "running" for p in seen), seen[:3]
    assert set(p["phase"] for p in seen) <= {"expand", "migrate"} and "expand" in set(p["phase"] for p in seen)
    names = set(p["name"] for p in seen if p["step"] == "copy")
    assert names == {"images for ocata_expand01", "images for rocky_expand01", "images for rocky_expand02"}, names
    assert all(p["host"] and p["pid"] for p in seen)
    # Once over, nothing is left running.
    after = facts(db.url)["glance_db"]["run"]
    assert after["progress"] is None and after["msg"] is None, after


def test_a_killed_run_is_seen_as_stale_and_its_next_run_clears_it(make_database, tmp_path):
    db = make_database("mysql")
    seed(db, KILLED_IMAGES)
    run = subprocess.Popen([sys.executable, RUN_PHASE, "module", "expand", json.dumps({"connection": db.url})],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        seen = None
        while time.monotonic() < deadline and run.poll() is None:
            seen = facts(db.url)["glance_db"]["run"]
            if seen["progress"] and seen["progress"]["step"] == "copy" and seen["progress"]["rows_done"]:
                break
        os.kill(run.pid, signal.SIGKILL)
        assert seen["progress"]["state"] == "running", seen
        assert seen["msg"].startswith("A run is in progress (expand on host %s, pid %d): expand: copy" % (
            seen["progress"]["host"], run.pid)), seen["msg"]
    finally:
        run.wait(30)

    found = facts(db.url)["glance_db"]["run"]
    assert found["progress"]["state"] == "stale", found
    assert found["progress"]["line"].endswith("(stale: its process no longer holds the migration lock)"), found
    assert re.search(r"stopped at expand: copy \d of 3, images: [\d,]+/60,000 \(\d+ %\)[\w ,]*: it no longer holds",
                     found["msg"]), found["msg"]
    assert "Run glance_db_expand again" in found["msg"], found["msg"]

    # The next expand takes the lock, clears the copy's leftovers and the record, and finishes.
    again = subprocess.run([sys.executable, RUN_PHASE, "module", "expand", json.dumps({"connection": db.url})],
                           capture_output=True, text=True, timeout=600, check=False)
    assert json.loads(again.stdout.strip().splitlines()[-1]).get("failed") is not True, again.stdout[-2000:]
    found = facts(db.url)["glance_db"]["run"]
    assert found["progress"] is None and found["leftovers"] == [], found
    assert differences(db.engine, "mysql", "online_expand_from_mitaka02") == ""


# ---- lock waits, and a run in another lock database (issue 26: throttled names lock waits too)
LOCK_WAIT = re.compile(r"lock wait: retrying a data migration batch after error 1205 \(try [2-7] of 7\)")
LOCKED_IMAGES = 2000
MIGRATE_BATCH = 500


def _holding(db, where):
    """Another connection (an API node's transaction) holding the row locks of the images ``where``
    selects, until it is rolled back."""
    engine = sa.create_engine(db.url, poolclass=sa.pool.NullPool)
    conn = engine.connect()
    conn.exec_driver_sql("SELECT id FROM images WHERE %s FOR UPDATE" % where).fetchall()
    return engine, conn


def _release(held):
    engine, conn = held
    conn.rollback()
    conn.close()
    engine.dispose()


def _in_thread(run):
    """``run()`` in a thread; its result (or error) in the dict returned once joined."""
    done = {}

    def target():
        try:
            done["outcome"] = run()
        except Exception as exc:  # pylint: disable=broad-except  # the test asserts on it
            done["error"] = exc
    thread = threading.Thread(target=target)
    thread.start()
    return thread, done


def _published(db, wanted, lock_database=None, seconds=60):
    """The first record published for ``db`` (read as glance_db_wait polls it) that ``wanted(record)``
    finds, within ``seconds``; or None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = state.read_progress_direct(db.url, lock_database)
        if record and wanted(record):
            return record
        time.sleep(0.1)
    return None


def _waits(record):
    return bool(LOCK_WAIT.fullmatch(record.get("throttled") or ""))


def _expanded(db):
    seed(db, LOCKED_IMAGES)
    phases.run(db.engine, "expand")  # a plain expand: no copy at this size; every visibility NULL


def test_a_batch_waiting_for_a_row_lock_is_throttled_until_it_goes_through(make_database):
    """An API node's transaction holds an image of the first batch and one of the third: the data
    migration's batch waits for the row lock, is tried again, and the published progress says so
    (lock wait, error 1205, the try); once the first goes through it no longer does, until the third
    waits in turn."""
    db = make_database("mysql")
    _expanded(db)
    first = _holding(db, "id = '%s'" % image_id(0))
    third = _holding(db, "id = '%s'" % image_id(2 * MIGRATE_BATCH + 200))
    thread, done = _in_thread(lambda: phases.run(db.engine, "migrate", batch_size=MIGRATE_BATCH))
    try:
        waiting = _published(db, _waits)
        _release(first)
        went_on = _published(db, lambda record: record.get("rows_done") and not record.get("throttled"))
        again = _published(db, lambda record: record.get("rows_done") and _waits(record))
    finally:
        for held in (first, third):
            if not held[1].closed:
                _release(held)
        thread.join(180)
    assert waiting, "the first batch's lock wait was never published"
    assert (waiting["state"], waiting["step"], waiting["rows_done"]) == ("running", "data migration", 0), waiting
    assert waiting["line"].endswith(", throttled: " + waiting["throttled"]), waiting["line"]
    assert went_on and went_on["state"] == "running", "the run kept saying it waited once the batch went through"
    assert again and again["rows_done"] < LOCKED_IMAGES, again
    assert "error" not in done, done
    assert done["outcome"].migrated[0] == {"name": "ocata_migrate01_community_images", "migrated": LOCKED_IMAGES,
                                           "remaining": 0}, done["outcome"].migrated
    assert state.read_progress_direct(db.url) is None


def test_a_schema_change_waiting_for_a_metadata_lock_is_throttled(make_database):
    """An open transaction that read images holds its metadata lock: expand's ALTER TABLE waits
    ddl_lock_wait_timeout (1 s), is tried again, and the progress names the statement meanwhile."""
    db = make_database("mysql")
    seed(db, 10)
    engine = sa.create_engine(db.url, poolclass=sa.pool.NullPool)
    reader = engine.connect()
    reader.exec_driver_sql("SELECT COUNT(*) FROM images").fetchall()  # the transaction stays open
    thread, done = _in_thread(lambda: phases.run(db.engine, "expand", ddl_lock_wait_timeout=1))
    try:
        waiting = _published(db, lambda record: (record.get("throttled") or "").startswith(
            "lock wait: retrying ALTER TABLE images after error 1205 (try "))
    finally:
        reader.rollback()
        reader.close()
        engine.dispose()
        thread.join(180)
    assert waiting and waiting["step"] == "revision" and waiting["name"] == "ocata_expand01", waiting
    assert "error" not in done and "ocata_expand01" in done["outcome"].applied_revisions, done


def test_a_run_in_another_lock_database_is_seen_by_facts_given_that_database(make_database, tmp_path):
    """A migrate run with galera_lock_database set publishes there; glance_db_facts (the module, the
    direct progress read, and the role's facts entry point) see it when given the same database, and
    not without it."""
    db = make_database("mysql")
    _expanded(db)
    lock_database = "glance_lock_t_%s" % uuid.uuid4().hex[:10]
    held = _holding(db, "id = '%s'" % image_id(0))
    thread, done = _in_thread(lambda: phases.run(db.engine, "migrate", galera_lock_database=lock_database))
    playbook = tmp_path / "facts.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"glance_db_connection": db.url, "glance_db_galera_lock_database": lock_database},
        "tasks": [{"ansible.builtin.include_role": {"name": "openstack_ops.glance.glance_db", "tasks_from": "facts"}},
                  {"ansible.builtin.copy": {"dest": str(tmp_path / "run.json"),
                                            "content": "{{ glance_db_state.run | to_json }}"}}],
    }]))
    try:
        waiting = _published(db, lambda record: True, lock_database)
        module = facts(db.url, galera_lock_database=lock_database)["glance_db"]["run"]
        polled = facts(db.url, galera_lock_database=lock_database, progress_only=True)["glance_db"]["run"]
        elsewhere = facts(db.url)["glance_db"]["run"]
        role = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
            capture_output=True, text=True, timeout=300, check=False, cwd=str(tmp_path),
            env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
        still_waiting = state.read_progress_direct(db.url, lock_database)
    finally:
        _release(held)
        thread.join(180)
        db._admin("DROP DATABASE IF EXISTS `%s`" % lock_database)
    assert waiting and waiting["state"] == "running" and waiting["phase"] == "migrate", waiting
    assert module["progress"]["state"] == "running" and module["msg"].startswith("A run is in progress (migrate"), module
    assert polled["progress"]["phase"] == "migrate", polled
    assert elsewhere["progress"] is None and elsewhere["msg"] is None, elsewhere
    assert role.returncode == 0, (role.stdout[-3000:], role.stderr[-2000:])
    assert json.loads((tmp_path / "run.json").read_text())["progress"]["phase"] == "migrate"
    assert still_waiting, "the run ended before the role read it: the role's reading proves nothing"
    assert "error" not in done and done["outcome"].migrated[0]["migrated"] == LOCKED_IMAGES, done
