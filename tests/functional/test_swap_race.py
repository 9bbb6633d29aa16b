"""A release N-1 write that meets a shadow copy's swap (issue 21, the 1146 residual).

The swap's RENAME takes its metadata locks in name order: ``_glance_new_images``
before ``images``. A writer that opened images meanwhile needs the copy for its copy
trigger: the two deadlock, MariaDB makes the writer back off, and the writer opens its
tables again, now the swapped ones. MariaDB (10.11.19) then runs the writer's statement
without the tables read by the triggers of the table it backed off on (the copy's
stand-ins): a stand-in that read images failed the write with 1146 "Table '...images'
doesn't exist" (swap_stress.py shows it under load; deterministic here).
Stand-ins read no table now (revisions/visibility.py), and the copy's upsert keeps
images' row as it is (online.copier.TableCopy._trigger).
"""

from __future__ import annotations

import threading
import time
import uuid

import pymysql
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.online import copier
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.revisions import CARRIED_TRIGGERS
from private_server import private_mariadb  # noqa: F401  pylint: disable=unused-import
from seed import image_id, seed_pre_ocata

import swap_stress

SEEDED = 50
WAITING = "Waiting for table metadata lock"


def _connect(db):
    url = sa.engine.make_url(db.url)
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password,
                           database=url.database, autocommit=False)
    with conn.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = 'TRADITIONAL'")
    return conn


def _create(conn, image, is_public):
    """Release N-1's image create (benchmarks/canary.py): images with is_public, then a property."""
    with conn.cursor() as cursor:
        for statement in swap_stress.CREATE:
            cursor.execute(statement, {"id": image, "name": "race-" + image[:8], "value": is_public})


def _wait_for(db, what, timeout=15):
    """Until a statement starting with ``what`` waits for a metadata lock; False at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
                     "AND STATE = :s AND INFO LIKE :w", s=WAITING, w=what + "%"):
            return True
        time.sleep(0.02)
    return False


def test_a_write_queued_at_the_swap_succeeds(make_database):
    """Deterministic: a transaction holds images (an N-1 create, and a name change of a row not
    migrated yet), so the swap's RENAME waits holding the copy's name; an N-1 create then opens
    images and waits for the copy; the transaction commits. The create completes with its
    visibility derived, and the row changed keeps its NULL visibility for the data migration."""
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    seed_pre_ocata(db, SEEDED)
    phases.run(db.engine, "expand")  # Glance's Ocata triggers on images from here to contract
    unmigrated = image_id(1)
    assert db.scalar("SELECT visibility FROM images WHERE id = :i", i=unmigrated) is None
    holder, writer = _connect(db), _connect(db)
    held, queued = str(uuid.uuid4()), str(uuid.uuid4())
    outcome = {}

    def create():
        try:
            _create(writer, queued, False)
            writer.commit()
            outcome["writer"] = "ok"
        except pymysql.MySQLError as exc:
            outcome["writer"] = exc.args
            writer.rollback()  # its transaction would hold images from the swap's later statements

    def queue_a_writer():
        thread = threading.Thread(target=create)
        try:
            outcome["rename_waited"] = _wait_for(db, "RENAME TABLE `images`")
            thread.start()
            outcome["writer_waited"] = _wait_for(db, "INSERT INTO images")
        finally:
            holder.commit()  # whatever happened: the swap must not wait for ever
        if thread.ident:
            thread.join(60)

    def run_ddl(conn, sql):
        if sql.startswith("RENAME TABLE `images`"):
            _create(holder, held, True)
            with holder.cursor() as cursor:
                cursor.execute("UPDATE images SET name = 'renamed' WHERE id = %s", (unmigrated,))
            choreography.start()
        return conn.exec_driver_sql(sql)

    choreography = threading.Thread(target=queue_a_writer)
    copy = copier.TableCopy(run_ddl, min_rows=1, carried=CARRIED_TRIGGERS)
    try:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("SET SESSION lock_wait_timeout = 60")
            copy.rebuild(conn, "images", "ADD INDEX IF NOT EXISTS race_size_idx (size)")
        choreography.join(60)
    finally:
        holder.close()
        writer.close()

    assert outcome["rename_waited"] and outcome["writer_waited"], outcome  # the race was met
    assert outcome["writer"] == "ok", outcome
    assert copy.copies and copy.copies[0]["table"] == "images"
    rows = dict(((r[0], (r[1], r[2], r[3])) for r in db.rows(
        "SELECT i.id, i.is_public, i.visibility, COUNT(p.id) FROM images i LEFT JOIN image_properties p "
        "ON p.image_id = i.id WHERE i.id IN (:a, :b) GROUP BY i.id, i.is_public, i.visibility", a=held, b=queued)))
    assert rows == {held: (1, "public", 1), queued: (0, "shared", 1)}, rows
    assert db.rows("SELECT name, visibility FROM images WHERE id = :i", i=unmigrated) == [("renamed", None)]
    assert db.rows("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                   "AND TABLE_NAME LIKE '\\_glance\\_%'") == []


def test_no_write_fails_across_swaps_under_load(private_mariadb):
    """swap_stress.py, bounded: 8 N-1 writers as fast as they go across ``swaps`` swaps of images on
    a MariaDB of the test's own (every swap met writers queued behind its RENAME before the fix)."""
    swaps = 3
    with private_mariadb() as server:
        result = swap_stress.run(server, swaps=swaps, writers=8, images=1000, general_log=False,
                                 stop_on_error=False, out=lambda line: None)
    assert result["swaps"] == swaps
    assert result["errors"] == [], result["errors"][:5]
    assert result["created"] > 0 and result["lost"] == [] and result["no_visibility"] == []
