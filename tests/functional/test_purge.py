"""glance_db_purge's engine leaves exactly the rows real glance-manage's purge leaves.

Twin databases at head get the same soft-deleted rows of several distinct ages
in every table Glance purges (and live rows, and deleted images with their
children); real `glance-manage db purge` / `purge_images_table` runs on one and
ours on the other, and every table's remaining keys are compared. Where Glance
fails (an image with child rows left: a foreign-key error on every engine) ours
purges the children with it.
"""

from __future__ import annotations

import datetime
import threading
import time

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, purge
# glance_manage is the oracle fixture, used by name.
from test_interop import _glance, glance_manage  # noqa: F401  pylint: disable=unused-import

AGES = (5, 45, 100, 250, 400)  # days: around both defaults (30 and 180)
KEYS = {"task_info": "task_id"}
ALL_TABLES = ("images",) + purge.PURGE_TABLES


def _t(name, *columns):
    return sa.table(name, *[sa.column(c, t) for c, t in columns])


_DT, _B, _S = sa.DateTime, sa.Boolean, sa.String
IMAGES = _t("images", ("id", _S), ("status", _S), ("created_at", _DT), ("deleted", _B),
            ("deleted_at", _DT), ("min_disk", sa.Integer), ("min_ram", sa.Integer))
CHILD = {
    "image_properties": ("name", "p"),
    "image_tags": ("value", "t"),
    "image_locations": ("value", "file:///l"),
    "image_members": ("member", "m"),
}


def _child_table(name):
    extra = [(CHILD[name][0], _S)]
    if name == "image_members":
        extra.append(("can_share", _B))
    return _t(name, ("image_id", _S), ("created_at", _DT), ("deleted", _B), ("deleted_at", _DT), *extra)


TASKS = _t("tasks", ("id", _S), ("type", _S), ("status", _S), ("owner", _S), ("created_at", _DT),
           ("deleted", _B), ("deleted_at", _DT))
TASK_INFO = _t("task_info", ("task_id", _S), ("input", _S))


def image_id(n):
    return "00000000-0000-0000-0000-%012d" % n


def seed(db, now, images=15, tasks=12, id_base=0):
    """Soft-deleted rows of distinct deleted_at (no ties), live rows, deleted images with children."""
    created = now - datetime.timedelta(days=500)
    rows = dict((t, []) for t in ("images", "tasks", "task_info") + tuple(CHILD))

    def when(n, age, offset):
        return now - datetime.timedelta(days=age, minutes=n, seconds=offset)

    for n in range(images):
        iid = image_id(id_base + n)
        deleted = n % 3 != 0
        at = when(n, AGES[n % 5], 0) if deleted else None
        rows["images"].append(dict(id=iid, status="deleted" if deleted else "active", created_at=created,
                                   deleted=deleted, deleted_at=at, min_disk=0, min_ram=0))
        for k, child in enumerate(CHILD):
            column, value = CHILD[child]
            for j in range(2):
                if deleted:  # deleted with its image, as Glance's image delete does
                    child_at, child_deleted = at + datetime.timedelta(seconds=1 + 2 * k + j * 10), True
                elif j == 0:
                    child_at, child_deleted = None, False
                else:  # a property, tag, ... removed from a live image some time ago
                    child_at, child_deleted = when(n, AGES[(n + k) % 5], 20 + k), True
                row = dict(image_id=iid, created_at=created, deleted=child_deleted, deleted_at=child_at)
                row[column] = "%s%d" % (value, j)
                if child == "image_members":
                    row["can_share"] = False
                rows[child].append(row)
    for n in range(tasks):
        tid = "10000000-0000-0000-0000-%012d" % (id_base + n)
        deleted = n % 4 != 0
        rows["tasks"].append(dict(id=tid, type="import", status="success", owner="o", created_at=created,
                                  deleted=deleted, deleted_at=when(n, AGES[n % 5], 40) if deleted else None))
        rows["task_info"].append(dict(task_id=tid, input="{}"))
    with db.engine.begin() as conn:
        conn.execute(sa.insert(IMAGES), rows["images"])
        for child in CHILD:
            conn.execute(sa.insert(_child_table(child)), rows[child])
        conn.execute(sa.insert(TASKS), rows["tasks"])
        conn.execute(sa.insert(TASK_INFO), rows["task_info"])


def remaining(db):
    """Every purgeable table's keys, sorted."""
    return dict((t, sorted(r[0] for r in db.rows("SELECT %s FROM %s" % (KEYS.get(t, "id"), t))))
                for t in ALL_TABLES)


def orphans(db):
    return dict((t, db.scalar("SELECT COUNT(*) FROM %s WHERE image_id NOT IN (SELECT id FROM images)" % t))
                for t in CHILD)


def _ours(db, **args):
    job = purge.Purge(db.engine, batch_size=4, **args)  # small batches: several per table
    return job.run()


def _theirs(glance_manage, tmp_path, db, command, age, max_rows):  # noqa: F811
    return _glance(glance_manage, tmp_path, db.url, command, "--age_in_days", str(age),
                   "--max_rows", str(max_rows))


def _differences(ours, theirs):
    return dict((t, (sorted(set(ours[t]) - set(theirs[t])), sorted(set(theirs[t]) - set(ours[t]))))
                for t in ours if ours[t] != theirs[t])


def test_purge_leaves_the_rows_glance_leaves(database, make_database, glance_manage, tmp_path):  # noqa: F811
    ours, theirs = database, make_database(database.engine_name)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for db in (ours, theirs):
        phases.run(db.engine, "sync")
        seed(db, now)
    start = remaining(ours)
    report = []
    steps = [("purge", 30, 3), ("purge", 30, -1), ("purge_images_table", 180, 2),
             ("purge_images_table", 180, -1)]
    for command, age, max_rows in steps:
        code, output = _theirs(glance_manage, tmp_path, theirs, command, age, max_rows)
        assert code == 0, output
        _ours(ours, age_in_days=age, max_rows=max_rows, images_table=command == "purge_images_table")
        got, expected = remaining(ours), remaining(theirs)
        assert _differences(got, expected) == {}, (command, age, max_rows)
        report.append((command, age, max_rows, dict((t, len(start[t]) - len(got[t])) for t in got)))
    # Every table lost rows somewhere, so each was compared with something to compare.
    assert all(sum(step[3][t] for step in report) > 0 for t in ALL_TABLES), report
    assert orphans(ours) == dict((t, 0) for t in CHILD)
    print("\n%s oracle comparison, rows purged so far after each step (differences: 0):" % database.engine_name)
    for step in report:
        print("  %s --age_in_days %d --max_rows %d: %s" % step)


def test_images_with_children_go_with_them_where_glance_fails(database, make_database, glance_manage,  # noqa: F811
                                                           tmp_path):
    """Glance 33 stops on a foreign-key error (SQLite too: oslo.db enforces them there). Ours purges."""
    ours, theirs = database, make_database(database.engine_name)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for db in (ours, theirs):
        phases.run(db.engine, "sync")
        seed(db, now)  # deleted images older than 180 days still have their (deleted) children
    before = remaining(theirs)
    code, output = _theirs(glance_manage, tmp_path, theirs, "purge_images_table", 180, -1)
    assert code != 0 and "Purge command failed" in output, output
    assert remaining(theirs) == before
    counts = _ours(ours, images_table=True, max_rows=-1)
    assert counts["images"] > 0 and all(counts[t] > 0 for t in CHILD), counts
    assert orphans(ours) == dict((t, 0) for t in CHILD)
    # What is left of the images is what Glance meant to leave: the younger ones.
    old = now - datetime.timedelta(days=180)
    assert not ours.scalar("SELECT COUNT(*) FROM images WHERE deleted_at < :old", old=old)
    assert len(remaining(ours)["images"]) == ours.scalar(
        "SELECT COUNT(*) FROM images WHERE deleted_at IS NULL OR deleted_at >= :old", old=old)


def test_check_mode_counts_what_the_run_deletes_and_writes_nothing(database):
    phases.run(database.engine, "sync")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    seed(database, now)
    before = remaining(database)
    for args in (dict(max_rows=3), dict(max_rows=-1), dict(images_table=True, max_rows=-1)):
        planned = purge.run(purge.Purge(database.engine, **args), check_mode=True)
        assert remaining(database) == before and planned["changed"] == (planned["total"] > 0)
        assert set(planned["rows"]) == set(purge.Purge(database.engine, **args).tables)
    planned = purge.run(purge.Purge(database.engine, max_rows=-1), check_mode=True)["rows"]
    done = purge.run(purge.Purge(database.engine, max_rows=-1, batch_size=2))
    assert done["rows"] == planned and done["changed"] and done["total"] == sum(planned.values()) > 0
    assert "Deleted %d row(s) from table image_properties" % planned["image_properties"] in done["msg"]
    writes = []
    sa.event.listen(database.engine, "before_cursor_execute",
                    lambda *a: writes.append(a[2]) if a[2].lstrip().upper().startswith("DELETE") else None)
    again = purge.run(purge.Purge(database.engine, max_rows=-1), diff=True)
    assert not again["changed"] and again["total"] == 0 and writes == []
    assert again["diff"]["before"] == again["diff"]["after"]


def test_a_live_row_with_deleted_at_is_kept(make_database):
    """Glance purges by deleted_at alone; a row with deleted false is live for the API."""
    db = make_database("sqlite")
    phases.run(db.engine, "sync")
    old = datetime.datetime(2020, 1, 1)
    with db.engine.begin() as conn:
        conn.execute(sa.insert(TASKS), [dict(id="t-live", type="import", status="success", owner="o",
                                             created_at=old, deleted=False, deleted_at=old)])
        conn.execute(sa.insert(TASK_INFO), [dict(task_id="t-live", input="{}")])
    assert purge.Purge(db.engine, max_rows=-1).run()["tasks"] == 0
    assert remaining(db)["tasks"] == ["t-live"] and remaining(db)["task_info"] == ["t-live"]


@pytest.mark.parametrize("args, words", [
    (dict(age_in_days=-1), "Must supply a non-negative value for age"),
    (dict(age_in_days=100000), "Maximal age is count of days since epoch"),
    (dict(max_rows=-2), "Minimal rows limit is -1"),
    (dict(max_rows=2 ** 31), "'max_rows' value out of range"),
])
def test_refuses_what_glance_refuses(args, words):
    with pytest.raises(purge.PurgeRefused, match=words):
        purge.Purge(None, **args)


def test_refuses_a_database_without_glance_tables(make_database):
    db = make_database("sqlite")
    with pytest.raises(purge.PurgeRefused, match="glance_db_sync first"):
        purge.run(purge.Purge(db.engine))


def test_a_batch_waits_for_a_row_lock_a_bounded_time_and_retries(make_database):
    """An API transaction holding a row the purge wants: the batch times out, backs off, then succeeds."""
    db = make_database("mysql")
    phases.run(db.engine, "sync")
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    seed(db, now)
    held = threading.Event()

    def hold_row():
        with db.engine.connect() as conn:
            conn.execute(sa.text("SELECT id FROM image_properties WHERE deleted = 1 ORDER BY id LIMIT 1 "
                                 "FOR UPDATE"))
            held.set()
            time.sleep(2.5)
            conn.rollback()

    holder = threading.Thread(target=hold_row)
    holder.start()
    held.wait(10)
    job = purge.Purge(db.engine, max_rows=-1, lock_wait_timeout=1)
    started = time.monotonic()
    counts = job.run()
    holder.join()
    assert job.retries >= 1 and counts["image_properties"] > 0
    assert time.monotonic() - started < 10
    assert db.scalar("SELECT COUNT(*) FROM image_properties WHERE deleted = 1 AND deleted_at < :c",
                     c=now - datetime.timedelta(days=30)) == 0
