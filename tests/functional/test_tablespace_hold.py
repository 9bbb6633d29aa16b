"""mysql_datadir: each ALTER TABLE runs while a second hard link holds the table's file.

These tests need the MariaDB server's data directory on this machine, writable
by the test user (as on the development machine and in CI, where tests run as
root beside the server); elsewhere they skip and say why (in CI they fail).
"""

from __future__ import annotations

import os
import re

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import (
    ConfigurationError,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.online.tablespace_hold import (
    HOLD_PREFIX,
)
from parity import HEAD, differences
from seed import seed_pre_ocata, visibilities

ALTER = re.compile(r"\s*ALTER\s+TABLE\s+`?(\w+)`?", re.IGNORECASE)


def _datadir(db):
    datadir = db.scalar("SELECT @@datadir")
    if not os.access(os.path.join(datadir, db.name), os.W_OK):
        reason = "the MariaDB data directory %s is not on this host or not writable by this user" % datadir
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI runs beside the server, as root)", pytrace=False)
        pytest.skip(reason)
    return datadir


def _holds(datadir, db):
    return sorted(n for n in os.listdir(datadir) if n.startswith(HOLD_PREFIX + db.name + "."))


def test_every_alter_runs_with_its_table_held(make_database):
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    expected = seed_pre_ocata(db)
    datadir = _datadir(db)
    seen = []  # (table, links of its .ibd file, hold present) at each ALTER TABLE

    @sa.event.listens_for(db.engine, "before_cursor_execute")
    def look(conn, cursor, statement, parameters, context, executemany):
        match = ALTER.match(statement)
        if match:
            table = match.group(1)
            tablespace = os.path.join(datadir, db.name, table + ".ibd")
            seen.append((table, os.stat(tablespace).st_nlink,
                         "%s%s.%s" % (HOLD_PREFIX, db.name, table) in os.listdir(datadir)))

    for phase in ("expand", "migrate", "contract"):
        phases.run(db.engine, phase, mysql_datadir=datadir)
        assert _holds(datadir, db) == []  # every hold removed once its ALTER ended

    assert ("images", 2, True) in seen  # is_public made NULL-able, visibility NOT NULL
    assert seen and all(links == 2 and held for table, links, held in seen), seen
    assert differences(db.engine, "mysql", HEAD) == ""
    assert visibilities(db) == expected


def test_a_killed_runs_hold_is_freed_by_the_next_run(make_database):
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    datadir = _datadir(db)
    leftover = os.path.join(datadir, "%s%s.images" % (HOLD_PREFIX, db.name))
    os.link(os.path.join(datadir, db.name, "images.ibd"), leftover)
    try:
        phases.run(db.engine, "expand", mysql_datadir=datadir)
        assert not os.path.exists(leftover)
    finally:
        if os.path.exists(leftover):
            os.unlink(leftover)


@pytest.mark.parametrize("case", ["sqlite", "wrong directory"])
def test_unusable_datadir_is_refused_before_any_change(make_database, tmp_path, case):
    db = make_database("sqlite" if case == "sqlite" else "mysql")
    with pytest.raises(ConfigurationError) as refused:
        phases.run(db.engine, "sync", mysql_datadir=str(tmp_path))
    message = str(refused.value)
    if case == "sqlite":
        assert "MySQL/MariaDB only" in message
    else:
        assert "does not hold the files of database %s" % db.name in message
        assert "SELECT @@datadir" in message
    assert sa.inspect(db.engine).get_table_names() == []


def test_a_file_that_cannot_be_held_gives_a_warning_not_a_failure(make_database):
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    datadir = _datadir(db)
    in_the_way = os.path.join(datadir, "%s%s.images" % (HOLD_PREFIX, db.name))
    os.mkdir(in_the_way)  # the link cannot be made there
    try:
        outcome = phases.run(db.engine, "expand", mysql_datadir=datadir)
        assert os.path.isdir(in_the_way)  # not ours to remove
    finally:
        os.rmdir(in_the_way)
    assert outcome.changed
    warned = [w for w in outcome.warnings if "Could not hold the file of table images" in w]
    assert len(warned) == 1, outcome.warnings
    assert db.scalar("SELECT COUNT(*) FROM alembic_version") == 1
    assert _holds(datadir, db) == []
