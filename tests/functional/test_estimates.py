"""Duration estimates from a short measured sample on the server (estimates.py, online/sample.py):
check mode on MariaDB samples each table a long step moves and states the basis and range; the
sample leaves nothing behind and locks no row of the table; where no sample can be taken
(no CREATE TEMPORARY TABLES, a small table, PostgreSQL, SQLite) the fixed rates answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import estimates, online, phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.online.sample import (
    SampleUnavailable, copy_rates,
)
from accounts import engine_without
from seed import seed_pre_ocata

IMAGES = online.MIN_ROWS + 2000  # a copy of images is expected; two repeats of the sample fit
RUN_PHASE = Path(__file__).resolve().parent / "run_phase.py"


def _large(make_database):
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    seed_pre_ocata(db, IMAGES)
    return db


def _visible(db):
    """What anyone else sees of the database: its tables, triggers and alembic_version."""
    return (db.rows("SHOW FULL TABLES"), db.rows("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                                                 "WHERE TRIGGER_SCHEMA = DATABASE()"),
            db.rows("SELECT version_num FROM alembic_version"))


def _sessions(db):
    """The server's sessions on this database other than the one asking."""
    return db.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> "
                     "CONNECTION_ID()")


def _assert_pool_clean(engine):
    """No session the engine keeps for later kept the sample's temporary table or settings."""
    kept = [engine.connect() for _kept in range(engine.pool.checkedin())]
    try:
        assert kept
        for conn in kept:
            assert conn.exec_driver_sql("SELECT @@session.max_statement_time").scalar() == 0
            with pytest.raises(sa.exc.ProgrammingError, match="1146"):
                conn.exec_driver_sql("SELECT 1 FROM _glance_sample_images")
    finally:
        for conn in kept:
            conn.close()


def _assert_sampled(step, rows=IMAGES):
    estimated = step["estimated"]
    assert estimated["basis"].startswith("sampled on this server: %d rows of images copied in " % (5000 * 2)), step
    assert "(2 repeats," in estimated["basis"], step
    assert 0 < estimated["low"] < estimated["seconds"] < estimated["high"], step
    assert step["rows"] == rows


def test_check_mode_samples_the_copies_and_leaves_nothing_behind(make_database):
    db = _large(make_database)
    before = _visible(db)
    started = time.monotonic()
    result = json.loads(subprocess.run(  # the module as Ansible runs it, in check mode
        [sys.executable, str(RUN_PHASE), "module", "expand", json.dumps(
            {"connection": db.url, "_ansible_check_mode": True})], capture_output=True, text=True, check=True).stdout)
    assert time.monotonic() - started < 10  # the sample itself: at most its 2 s cap
    assert [(d["step"], d["table"]) for d in result["durations"]] == [("copy", "images")] * 3, result
    for step in result["durations"]:
        _assert_sampled(step, db.scalar("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE "
                                        "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'images'"))
        assert "a copy runs at %.2g of that, in batches of 1000 with the run's pauses" % estimates.COPY_SHARE in \
            step["estimated"]["basis"]
    db.engine.dispose()
    assert _sessions(db) == 0  # the sample's session, and its temporary table, are gone
    assert _visible(db) == before


def test_a_data_migration_is_estimated_from_its_tables_sample_in_check_mode_and_in_the_run(make_database):
    db = _large(make_database)
    phases.run(db.engine, "sync", version="ocata_expand01")  # the Ocata migration's rows pending
    db.execute("UPDATE images SET visibility = NULL")
    planned = phases.run(db.engine, "migrate", check_mode=True).plan.durations()
    _assert_pool_clean(db.engine)
    assert [(d["step"], d["name"]) for d in planned] == [("data migration", "ocata_migrate01_community_images")]
    _assert_sampled(planned[0])
    assert "this data migration runs at %.2g of that, in batches of 5000" % estimates.MIGRATION_SHARE[
        "ocata_migrate01_community_images"] in planned[0]["estimated"]["basis"]
    ran = phases.run(db.engine, "migrate").durations()  # the run samples in its own plan, under the lock
    _assert_sampled(ran[0])
    assert ran[0]["seconds"] > 0


def test_without_create_temporary_tables_the_fixed_rates_answer(make_database):
    db = _large(make_database)
    before = _visible(db)
    with engine_without(db, "ct", "CREATE TEMPORARY TABLES") as engine:
        durations = phases.run(engine, "expand", check_mode=True).plan.durations()
    assert len(durations) == 3
    for step in durations:
        basis = step["estimated"]["basis"]
        assert basis.startswith("fixed rate measured on test servers: ") and "half to twice" in basis, basis
        assert "no sample: Access denied" in basis and "grant the user CREATE TEMPORARY TABLES" in basis, basis
    assert _visible(db) == before


def test_the_sample_locks_no_row_of_the_table(make_database):
    """A write holding the first image's row (the first the sample reads) does not hold the sample:
    a share-locking read would wait for it, past the sample's cap, and fall back to fixed rates."""
    db = _large(make_database)
    with db.engine.connect() as writer:
        writer.exec_driver_sql("UPDATE images SET name = 'held' ORDER BY id LIMIT 1")  # left uncommitted
        started = time.monotonic()
        durations = phases.run(db.engine, "expand", check_mode=True).plan.durations()
        took = time.monotonic() - started
        writer.rollback()
    _assert_sampled(durations[0], durations[0]["rows"])
    assert took < 5


def test_the_sample_is_bounded_in_time(make_database):
    db = _large(make_database)
    started = time.monotonic()
    try:
        rates = copy_rates(db.engine, "images", 1000, cap=0.05)
    except SampleUnavailable as exc:  # the first repeat did not finish within the cap
        assert "took more than 0.05 s" in str(exc) or "max_statement_time" in str(exc), exc
    else:
        assert len(rates) == 1  # no repeat starts after the cap
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql", "mysql"])
def test_where_no_sample_is_taken_the_fixed_rates_answer(make_database, engine_name):
    """SQLite and PostgreSQL are never sampled; on MariaDB a step that moves fewer rows than a
    sample is not: check mode costs what it did for it."""
    db = make_database(engine_name)
    phases.run(db.engine, "sync", version="mitaka02")
    seed_pre_ocata(db, 40)
    durations = phases.run(db.engine, "sync", check_mode=True).plan.durations()
    assert [d["name"] for d in durations] == ["ocata_migrate01_community_images", "train_migrate01_backend_to_store"]
    for step in durations:
        basis = step["estimated"]["basis"]
        assert basis.startswith("fixed rate measured on test servers: %d rows at " % step["rows"]), basis
        if engine_name == "mysql":
            assert basis.endswith("(no sample: %d rows to move, fewer than a sample's 5000)" % step["rows"]), basis
        else:
            assert "no sample" not in basis
