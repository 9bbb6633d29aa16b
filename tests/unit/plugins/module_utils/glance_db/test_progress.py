"""progress.py without a server: the line an operator reads, the rate and ETA, the throttle,
and a store that cannot be written (a real file store in a directory the run may not write)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import progress


class Clock(object):
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_line_reads_as_the_issue_asks():
    record = {"phase": "expand", "step": "copy", "index": 2, "count": 3, "table": "images",
              "rows_done": 412000, "rows_total": 1000000, "percent": 41.2, "rows_per_second": 2100.4,
              "eta_seconds": 280}
    assert progress.line(record) == \
        "expand: copy 2 of 3, images: 412,000/1,000,000 (41 %), 2,100 rows/s, ETA 4 min 40 s"
    record.update(stage="swapping", rows_done=1000000, percent=100.0, eta_seconds=None)
    assert progress.line(record) == "expand: copy 2 of 3, images: 1,000,000/1,000,000 (100 %), swapping"
    record.update(throttled="Galera flow control", state="stale", stage="copying rows")
    assert progress.line(record) == ("expand: copy 2 of 3, images: 1,000,000/1,000,000 (100 %), throttled: "
                                     "Galera flow control" + progress.STALE)
    assert progress.line({"phase": "expand", "step": "revision", "name": "ocata_expand01", "index": 3,
                          "count": 5}) == "expand: revision 3 of 5, ocata_expand01"
    assert progress.line({"phase": "migrate", "step": None}) == "migrate: starting"


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (59.6, "1 min 0 s"), (280, "4 min 40 s"),
                                           (3725, "1 h 2 min")])
def test_durations(seconds, text):
    assert progress.duration(seconds) == text


def test_rate_and_eta_come_once_a_few_percent_are_done(tmp_path):
    clock = Clock()
    store = progress.FileStore(str(tmp_path / "glance.sqlite"))
    run = progress.Progress(store, clock=clock)
    run.begin("migrate", holder=None)
    run.planned([], [], ["ocata_migrate01_community_images"])
    run.step("data migration", "ocata_migrate01_community_images", rows_total=10000)
    clock.now += 1
    run.rows(200)  # 2 %: a rate, no ETA yet
    published = json.loads(open(store.path).read())
    assert (published["rows_per_second"], published["eta_seconds"]) == (200.0, None), published
    assert (published["index"], published["count"]) == (1, 1)
    clock.now += 9
    run.rows(2000)  # 20 % in 10 s: 8,000 rows left at 200 rows/s
    published = json.loads(open(store.path).read())
    assert (published["percent"], published["eta_seconds"]) == (20.0, 40), published
    assert published["host"] and published["pid"] == os.getpid()
    run.end()
    assert not os.path.exists(store.path)


def test_writes_are_throttled_but_a_step_and_its_end_are_published_at_once(tmp_path):
    clock = Clock()
    store = progress.FileStore(str(tmp_path / "glance.sqlite"))
    run = progress.Progress(store, clock=clock)
    run.begin("expand")
    run.step("copy", "images for ocata_expand01", 1, 1, table="images", rows_total=3000)

    def published():
        return json.loads(open(store.path).read())["rows_done"]
    clock.now += 0.1
    run.rows(1000)
    assert published() == 0  # within PUBLISH_SECONDS of the step's start
    clock.now += progress.PUBLISH_SECONDS
    run.rows(2000)
    assert published() == 2000
    run.rows(3000)
    assert published() == 3000  # the total, at once
    run.step("revision", "rocky_expand01", 4, 13)
    finished = json.loads(open(store.path).read())["finished"]
    assert [(f["name"], f["rows_done"], f["seconds"]) for f in finished] == [
        ("images for ocata_expand01", 3000, round(progress.PUBLISH_SECONDS + 0.1, 2))]
    assert progress.line(finished[0]).endswith("3,000/3,000 (100 %), done in 1 s")


def test_a_store_that_cannot_be_written_warns_once_and_the_run_goes_on(tmp_path):
    if os.geteuid() == 0:
        locked = tmp_path / "not-a-directory"
        locked.write_text("")  # root writes any directory; a file in the path fails for root too
        database = str(locked / "glance.sqlite")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        database = str(locked / "glance.sqlite")
    run = progress.Progress(progress.FileStore(database))
    run.begin("expand")
    run.step("copy", "images", 1, 1, table="images", rows_total=10)
    run.rows(10)
    run.end()
    assert len(run.warnings) == 1, run.warnings
    assert run.warnings[0].startswith("The progress of this run could not be published in %s" % (
        progress.file_of(database)))
    assert "the run went on" in run.warnings[0]


def test_without_a_store_nothing_is_written_and_nothing_fails():
    run = progress.Progress()
    run.rows(5)  # before begin: ignored
    with run.running("contract"):
        run.step("revision", "ocata_contract01", 1, 1)
        run.stage("swapping")
        run.throttled("Galera flow control")
    assert run.record is None and run.warnings == []


def test_a_stopped_runs_record_on_sqlite_is_stale(tmp_path):
    database = str(tmp_path / "glance.sqlite")
    with open(progress.file_of(database), "w") as out:
        json.dump({"phase": "expand", "step": "copy", "index": 1, "count": 1, "table": "images",
                   "rows_done": 5, "rows_total": 10, "percent": 50.0}, out)
    found = progress.read_sqlite(database)
    assert found["state"] == "stale" and found["line"].endswith(progress.STALE), found


def test_a_record_on_sqlite_is_running_while_a_process_holds_the_lock(tmp_path):
    from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import lock
    database = str(tmp_path / "glance.sqlite")
    run = progress.Progress(progress.FileStore(database))
    with lock._file_lock(database, 5), run.running("sync"):
        run.step("revision", "liberty", 1, 29)
        found = progress.read_sqlite(database)
        assert found["state"] == "running" and found["line"] == "sync: revision 1 of 29, liberty", found
    assert progress.read_sqlite(database) is None  # over: nothing published


class _LockWaitTimeout(Exception):
    """A driver's exception as PyMySQL raises it: (number, text)."""


def test_a_lock_wait_is_said_while_a_statement_is_tried_again_and_no_longer_once_it_went_through(tmp_path):
    from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import db_errors
    from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.deps import sa
    store = progress.FileStore(str(tmp_path / "glance.sqlite"))
    run = progress.Progress(store, clock=Clock())
    run.begin("migrate")
    run.step("data migration", "ocata_migrate01_community_images", rows_total=10)
    seen = []

    def published():
        return json.loads(open(store.path).read())

    def statement():
        seen.append(published()["throttled"])
        if len(seen) < 3:
            raise sa.exc.OperationalError("UPDATE images", None, _LockWaitTimeout(1205, "Lock wait timeout exceeded"))
        return "done"
    with run.lock_waits("a data migration batch") as on_retry:
        assert db_errors.with_backoff(statement, db_errors.BATCH, lambda seconds: None, on_retry=on_retry) == "done"
    assert seen == [None, "lock wait: retrying a data migration batch after error 1205 (try 2 of 7)",
                    "lock wait: retrying a data migration batch after error 1205 (try 3 of 7)"]
    assert published()["throttled"] is None
    run.rows(5)  # the rows after a wait are published at once, within PUBLISH_SECONDS or not
    assert published()["rows_done"] == 5


def test_a_new_stage_of_a_copy_is_not_throttled_by_the_last(tmp_path):
    store = progress.FileStore(str(tmp_path / "glance.sqlite"))
    run = progress.Progress(store)
    run.begin("expand")
    run.copy("images", 100)
    run.throttled("Galera flow control")
    run.stage("pointing foreign keys at the copy")
    assert json.loads(open(store.path).read())["throttled"] is None
