"""A held swap (hold_swap) on one MariaDB server: an online expand of a large mitaka02 database
copies images, waits before each swap while the release file exists, keeps the copy in step with
the application's writes meanwhile, swaps once the test removes the file (the documented action),
and ends with the schema real Glance gives.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import online, phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import ConfigurationError
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.online.held_swap import SwapHold
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.options import RunOptions
from parity import differences
from seed import IMAGE_INSERT, image_id, seed_pre_ocata

IMAGES = online.MIN_ROWS + 2000
HELD_SECONDS = 2  # how long the test holds each swap while it writes


def swap_renames(engine):
    """A list that gathers each swap's RENAME TABLE of the images copy run on ``engine``."""
    seen = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def look(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("RENAME TABLE") and "_glance_new_images" in statement:
            seen.append(statement)
    return seen


def test_a_held_swap_waits_in_step_until_the_file_is_removed(make_database, tmp_path):
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    seed_pre_ocata(db, IMAGES)
    started = time.monotonic()
    planned = phases.run(db.engine, "expand", check_mode=True).plan.durations()
    check_seconds = time.monotonic() - started
    assert [(d["step"], d["table"]) for d in planned] == [("copy", "images")] * 3, planned
    for step in planned:  # from the server's row estimate (InnoDB's) and a sample, with the range stated
        assert 0 < step["estimated"]["low"] < step["estimated"]["seconds"] < step["estimated"]["high"], step
        assert step["estimated"]["basis"].startswith("sampled on this server")
    assert check_seconds < 3.0  # the sample's cap is 2 s
    release = tmp_path / "release-swap"
    renames = swap_renames(db.engine)
    stop = threading.Event()
    inserted, errors, result = [], [], {}

    def writer():
        engine = sa.create_engine(db.engine.url, poolclass=sa.pool.NullPool)
        n = 1000000
        try:
            with engine.connect() as conn:
                while not stop.is_set():
                    n += 1
                    with conn.begin():
                        row = dict(id=image_id(n), name="new-%d" % n, is_public=True, deleted=False, protected=False)
                        conn.execute(sa.text(IMAGE_INSERT), row)
                        conn.execute(sa.text("UPDATE images SET name = 'renamed' WHERE id = :i"),
                                     dict(i=image_id(n % IMAGES)))
                    inserted.append(image_id(n))
                    time.sleep(0.01)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
        finally:
            engine.dispose()

    def expand():
        try:
            result["outcome"] = phases.run(db.engine, "expand", options=RunOptions(hold_swap=str(release)))
        except BaseException as exc:  # pylint: disable=broad-except
            result["error"] = exc

    threads = [threading.Thread(target=writer), threading.Thread(target=expand)]
    for thread in threads:
        thread.start()
    holds = []
    try:
        while threads[1].is_alive():
            if not release.exists():
                time.sleep(0.1)
                continue
            assert "waits while this file exists" in release.read_text()
            renames_before = len(renames)
            written_before = len(inserted)
            time.sleep(HELD_SECONDS)  # held: the writes go on, and no swap comes
            with db.engine.connect() as conn:  # one snapshot: the copy has every row the table has
                counts = conn.exec_driver_sql(
                    "SELECT (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM _glance_new_images), "
                    "(SELECT COUNT(*) FROM images i JOIN _glance_new_images c USING (id) WHERE i.name <=> c.name)"
                ).fetchone()
            holds.append(dict(counts=tuple(counts), written=len(inserted) - written_before,
                              renamed=len(renames) > renames_before, alive=threads[1].is_alive()))
            release.unlink()  # the documented action: the swap goes ahead
    finally:
        if release.exists():
            release.unlink()
        threads[1].join(600)
        stop.set()
        threads[0].join(60)
    assert "error" not in result, result
    assert errors == []
    copies = result["outcome"].table_copies
    assert len(copies) == len(holds) == 3, (copies, holds)
    for hold in holds:
        assert hold["alive"] and not hold["renamed"], hold
        assert hold["written"] > 0, hold  # the writes went on while held
        assert hold["counts"][0] == hold["counts"][1] == hold["counts"][2] >= IMAGES, hold
    assert all(c["held_seconds"] >= HELD_SECONDS for c in copies), copies
    assert len(renames) == 3
    ran = result["outcome"].durations()  # the real seconds beside the estimates (held time included)
    assert [d["seconds"] for d in ran] == [c["seconds"] for c in copies] and all(d["estimated"] for d in ran)
    assert not release.exists()
    assert differences(db.engine, "mysql", "online_expand_from_mitaka02") == ""
    with db.engine.connect() as conn:
        kept = set(conn.exec_driver_sql("SELECT id FROM images WHERE name LIKE 'new-%%'").scalars())
    assert set(inserted) <= kept


def test_a_hold_in_a_missing_directory_is_refused_before_anything(tmp_path):
    with pytest.raises(ConfigurationError, match="hold_swap is .*missing/release.* does not exist"):
        SwapHold(str(tmp_path / "missing" / "release"))
