"""Room before a shadow copy (issue 21, point 3), on a MariaDB of the test's own whose data
directory lies on a small filesystem: with images fitting once but not twice, an expand
run on the database server (mysql_datadir) refuses before changing anything, naming the
figures; Glance's writes go on; once space is freed, the same run completes and loses no
row. Check mode and the result give each copy's estimate."""

from __future__ import annotations

import os

import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import connection as db_connection
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, table_copy
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import EXPAND, GRAPH
from private_server import private_mariadb  # noqa: F401 (a fixture)
from seed import IMAGE_INSERT, image_id, seed_pre_ocata

IMAGES = table_copy.MIN_ROWS + 2000
MIB = 1 << 20
# What MariaDB answers on a full disk: the table is full, a table cannot be created
# (errno 135, no room), the disk is full.
DISK_FULL = {1114, 1005, 1021}


class _Database(object):
    """What seed_pre_ocata needs of a test database."""

    def __init__(self, url):
        self.engine = db_connection.create_engine(db_connection.resolve_url(url))


def test_an_expand_without_room_for_its_copy_refuses_before_changing_anything(private_mariadb):  # noqa: F811
    with private_mariadb(datadir_size="400M", redo="8M") as server:
        server.execute("CREATE DATABASE glance")
        db = _Database(server.url("glance"))
        try:
            phases.run(db.engine, "sync", version="mitaka02")
            seed_pre_ocata(db, IMAGES)
            server.execute("ANALYZE TABLE glance.images")
            planned = phases.run(db.engine, "expand", check_mode=True)
            estimates = planned.plan.as_dict()["table_copies"]
            assert [(c["revision"], c["table"]) for c in estimates] == [
                ("ocata_expand01", "images"), ("rocky_expand01", "images"), ("rocky_expand02", "images")]
            needed = max(c["estimated_bytes"]["total"] for c in estimates)
            assert needed > 2 * MIB, estimates
            # Leave room for the table once more (half a copy), not twice.
            filler = server.datadir / "filler.bin"
            disk = os.statvfs(server.datadir)
            with open(filler, "wb") as handle:
                handle.truncate(0)
                os.posix_fallocate(handle.fileno(), 0, disk.f_bavail * disk.f_frsize - needed // 2)
            before = db.engine.connect()
            try:
                version = before.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
            finally:
                before.close()
            try:
                phases.run(db.engine, "expand", mysql_datadir=str(server.datadir))
                raise AssertionError("expand ran without room for its copy")
            except table_copy.NoSpaceForCopy as refused:
                text = str(refused)
            assert "A shadow copy of table images needs about" in text and "nothing was started" in text, text
            assert "MiB free" in text and str(server.datadir) in text, text
            with db.engine.begin() as conn:
                assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == version
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                                            "DATABASE() AND LEFT(TABLE_NAME, 8) = '_glance_'").scalar() == 0
                conn.execute(sa.text(IMAGE_INSERT), dict(id=image_id(IMAGES + 1), name="n", is_public=True,
                                                         deleted=False, protected=False))
            filler.unlink()
            outcome = phases.run(db.engine, "expand", mysql_datadir=str(server.datadir))
            assert [c["table"] for c in outcome.table_copies] == ["images"] * 3
            assert all(c["estimated_bytes"]["total"] > 2 * MIB for c in outcome.table_copies), [c["estimated_bytes"] for c in outcome.table_copies]
            assert GRAPH.heads[EXPAND] in outcome.after["revisions"]
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM images").scalar() == IMAGES + 1
        finally:
            db.engine.dispose()


def test_a_copy_that_fills_the_disk_is_cleared_and_breaks_no_write(private_mariadb):  # noqa: F811
    """Without mysql_datadir nothing checks the room: the copy meets a full disk (1114) part-way.
    Whatever its cleanup manages on the full disk, no Glance write fails on our triggers
    (1146, 1054, 1360): while the disk is full they fail as Glance's own writes would (1114) or
    succeed; once space is freed, the next expand clears what is left and completes, and no
    row is lost."""
    with private_mariadb(datadir_size="400M", redo="8M") as server:
        server.execute("CREATE DATABASE glance")
        db = _Database(server.url("glance"))
        try:
            phases.run(db.engine, "sync", version="mitaka02")
            seed_pre_ocata(db, IMAGES)
            needed = phases.run(db.engine, "expand", check_mode=True).plan.table_copies[0]["estimated_bytes"]
            filler = server.datadir / "filler.bin"
            disk = os.statvfs(server.datadir)
            with open(filler, "wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, disk.f_bavail * disk.f_frsize - needed["total"] // 3)
            try:
                phases.run(db.engine, "expand")
                raise AssertionError("the copy did not meet the full disk")
            except sa.exc.OperationalError as exc:
                assert exc.orig.args[0] in DISK_FULL, exc
            codes = []
            for n in range(5):  # Glance's writes on the full disk
                try:
                    with db.engine.begin() as conn:
                        conn.execute(sa.text(IMAGE_INSERT), dict(id=image_id(IMAGES + 1 + n), name="n", is_public=True,
                                                                 deleted=False, protected=False))
                        conn.exec_driver_sql("UPDATE images SET name = 'renamed' WHERE id = '%s'" % image_id(5))
                    codes.append(None)
                except sa.exc.OperationalError as exc:
                    codes.append(exc.orig.args[0])
            assert set(codes) <= {None} | DISK_FULL, codes
            filler.unlink()
            written = [image_id(IMAGES + 1 + n) for n, code in enumerate(codes) if code is None]
            with db.engine.begin() as conn:  # and once space is freed
                conn.execute(sa.text(IMAGE_INSERT), dict(id=image_id(IMAGES + 10), name="n", is_public=True,
                                                         deleted=False, protected=False))
            phases.run(db.engine, "expand")
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                                            "DATABASE() AND LEFT(TABLE_NAME, 8) = '_glance_'").scalar() == 0
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = "
                                            "DATABASE() AND LEFT(TRIGGER_NAME, 8) = '_glance_'").scalar() == 0
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM images").scalar() == IMAGES + len(written) + 1
        finally:
            db.engine.dispose()
