"""Room before a shadow copy (issue 21, point 3), on a MariaDB of the test's own whose data
directory lies on a small filesystem: with images fitting once but not twice, an expand
run on the database server (mysql_datadir) refuses before changing anything, naming the
figures; Glance's writes go on; once space is freed, the same run completes and loses no
row. Check mode and the result give each copy's estimate."""

from __future__ import annotations

import contextlib
import os

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import connection as db_connection
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import online, phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.online import inspector
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import EXPAND, GRAPH
from private_server import private_mariadb  # noqa: F401  pylint: disable=unused-import
from seed import IMAGE_INSERT, image_id, seed_pre_ocata

IMAGES = online.MIN_ROWS + 2000
MIB = 1 << 20
# What MariaDB answers on a full disk: the table is full, a table cannot be created
# (errno 135, no room), the disk is full, a file cannot be written (errno 28, e.g. the
# .frm of a new table).
DISK_FULL = {1114, 1005, 1021, 3}


class _Database(object):
    """What seed_pre_ocata needs of a test database."""

    def __init__(self, url):
        self.engine = db_connection.create_engine(db_connection.resolve_url(url))


@contextlib.contextmanager
def _images_on_a_small_disk(private_mariadb):  # noqa: F811
    """(server, database) of a private server whose datadir is a 400 MB filesystem, the
    database at mitaka02 with IMAGES images."""
    with private_mariadb(datadir_size="400M", redo="8M") as server:
        server.execute("CREATE DATABASE glance")
        db = _Database(server.url("glance"))
        try:
            phases.run(db.engine, "sync", version="mitaka02")
            seed_pre_ocata(db, IMAGES)
            server.execute("ANALYZE TABLE glance.images")
            yield server, db
        finally:
            db.engine.dispose()


def _fill(server, leave):
    """A file on the datadir's filesystem that leaves ``leave`` bytes free; its path."""
    filler = server.datadir / "filler.bin"
    disk = os.statvfs(server.datadir)
    with open(filler, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, disk.f_bavail * disk.f_frsize - leave)
    return filler


def _version(db):
    with db.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()


def _ours(db, kind):
    """How many of our tables or triggers (leftovers.py's names) the database holds."""
    sql = {"tables": "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                     "AND LEFT(TABLE_NAME, 8) = '_glance_'",
           "triggers": "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
                       "AND LEFT(TRIGGER_NAME, 8) = '_glance_'"}[kind]
    with db.engine.connect() as conn:
        return conn.exec_driver_sql(sql).scalar()


def _insert(db, n):
    with db.engine.begin() as conn:
        conn.execute(sa.text(IMAGE_INSERT), dict(id=image_id(n), name="n", is_public=True, deleted=False,
                                                 protected=False))


def test_an_expand_without_room_for_its_copy_refuses_before_changing_anything(private_mariadb):  # noqa: F811
    with _images_on_a_small_disk(private_mariadb) as (server, db):
        estimates = phases.run(db.engine, "expand", check_mode=True).plan.as_dict()["table_copies"]
        assert [(c["revision"], c["table"]) for c in estimates] == [
            ("ocata_expand01", "images"), ("rocky_expand01", "images"), ("rocky_expand02", "images")]
        needed = max(c["estimated_bytes"]["total"] for c in estimates)
        assert needed > 2 * MIB, estimates
        filler = _fill(server, needed // 2)  # room for the table once more, not twice
        version = _version(db)
        with pytest.raises(inspector.NoSpaceForCopy) as refused:
            phases.run(db.engine, "expand", mysql_datadir=str(server.datadir))
        text = str(refused.value)
        assert "A shadow copy of table images needs about" in text and "nothing was started" in text, text
        assert "MiB free" in text and str(server.datadir) in text, text
        assert _version(db) == version and _ours(db, "tables") == 0
        _insert(db, IMAGES + 1)  # Glance writes on
        filler.unlink()
        outcome = phases.run(db.engine, "expand", mysql_datadir=str(server.datadir))
        assert [c["table"] for c in outcome.table_copies] == ["images"] * 3
        assert all(c["estimated_bytes"]["total"] > 2 * MIB for c in outcome.table_copies), [
            c["estimated_bytes"] for c in outcome.table_copies]
        assert GRAPH.heads[EXPAND] in outcome.after["revisions"]
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM images").scalar() == IMAGES + 1


def test_a_copy_that_fills_the_disk_is_cleared_and_breaks_no_write(private_mariadb):  # noqa: F811
    """Without mysql_datadir nothing checks the room: the copy meets a full disk part-way.
    Whatever its cleanup manages on the full disk, no Glance write fails on our triggers
    (1146, 1054, 1360): while the disk is full they fail as Glance's own writes would
    (DISK_FULL) or succeed; once space is freed, the next expand clears what is left and
    completes, and no row is lost."""
    with _images_on_a_small_disk(private_mariadb) as (server, db):
        needed = phases.run(db.engine, "expand", check_mode=True).plan.table_copies[0]["estimated_bytes"]
        filler = _fill(server, needed["total"] // 3)
        with pytest.raises(sa.exc.DBAPIError) as full:
            phases.run(db.engine, "expand")
        assert full.value.orig.args[0] in DISK_FULL, full.value
        codes = []
        for n in range(5):  # Glance's writes on the full disk
            try:
                with db.engine.begin() as conn:
                    conn.execute(sa.text(IMAGE_INSERT), dict(id=image_id(IMAGES + 1 + n), name="n", is_public=True,
                                                             deleted=False, protected=False))
                    conn.exec_driver_sql("UPDATE images SET name = 'renamed' WHERE id = '%s'" % image_id(5))
                codes.append(None)
            except sa.exc.DBAPIError as exc:
                codes.append(exc.orig.args[0])
        assert set(codes) <= {None} | DISK_FULL, codes
        filler.unlink()
        _insert(db, IMAGES + 10)  # and once space is freed
        phases.run(db.engine, "expand")
        assert _ours(db, "tables") == 0 and _ours(db, "triggers") == 0
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM images").scalar() == IMAGES + codes.count(None) + 1
