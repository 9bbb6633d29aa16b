"""The shadow-table copy (table_copy.py) on one MariaDB server: an online expand
and contract of a large mitaka02 database rebuild ``images`` through a copy,
the application's writes during the copy are all kept, the schema ends equal to
real Glance's, and a stopped copy's leftovers are removed by the next run.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, table_copy
from parity import HEAD, differences
from seed import IMAGE_INSERT, image_id, seed_pre_ocata, visibilities

IMAGES = table_copy.MIN_ROWS + 2000


def _copy_statements(db):
    """Record every statement that names a shadow copy of images."""
    seen = []

    @sa.event.listens_for(db.engine, "before_cursor_execute")
    def look(conn, cursor, statement, parameters, context, executemany):
        if "_glance_new_images" in statement or "_glance_old_images" in statement:
            seen.append(statement.split(None, 3)[:3])
    return seen


def _leftovers(db):
    tables = db.rows("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                     "AND TABLE_NAME LIKE '\\_glance\\_%'")
    triggers = db.rows("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
                       "AND TRIGGER_NAME LIKE '\\_glance\\_%'")
    return tables + triggers


def test_expand_and_contract_rebuild_images_through_a_copy(make_database):
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    expected = seed_pre_ocata(db, IMAGES)
    seen = _copy_statements(db)
    copies = {}
    for phase in ("expand", "migrate", "contract"):
        copies[phase] = phases.run(db.engine, phase).table_copies
        assert _leftovers(db) == []
    assert [(c["table"], c["rows"]) for c in copies["expand"] + copies["contract"]] == [("images", IMAGES)] * 2
    assert "MODIFY is_public" in copies["expand"][0]["alter"] and "visibility_image_idx" in copies["expand"][0]["alter"]
    assert copies["migrate"] == []
    renames = [s for s in seen if s[0].upper() == "RENAME"]
    # expand: the visibility index and is_public NULL-able in one copy; contract: visibility NOT NULL
    assert len(renames) == 2, seen
    assert differences(db.engine, "mysql", HEAD) == ""
    assert visibilities(db) == expected


def test_writes_during_the_copy_are_kept(make_database):
    """Inserts (with child rows), updates and deletes while expand copies images."""
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    seed_pre_ocata(db, IMAGES)
    stop = threading.Event()
    written = {"inserted": [], "updated": [], "deleted": []}

    def writer():
        n = 1000000
        with db.engine.connect() as conn:
            while not stop.is_set():
                n += 1
                with conn.begin():
                    conn.execute(sa.text(IMAGE_INSERT), dict(id=image_id(n), name="new-%d" % n,
                                                             is_public=True, deleted=False, protected=False))
                    conn.execute(sa.text("INSERT INTO image_properties (image_id, name, value, created_at, "
                                         "deleted) VALUES (:i, 'k', 'v', CURRENT_TIMESTAMP, 0)"), dict(i=image_id(n)))
                written["inserted"].append(image_id(n))
                old = image_id(n % IMAGES)
                with conn.begin():
                    conn.execute(sa.text("UPDATE images SET name = :name WHERE id = :id"),
                                 dict(name="renamed-%d" % n, id=old))
                written["updated"].append((old, "renamed-%d" % n))
                if n % 10 == 0:
                    gone = image_id(IMAGES - (n % 1000) - 1)
                    with conn.begin():
                        conn.execute(sa.text("DELETE FROM image_locations WHERE image_id = :id"), dict(id=gone))
                        conn.execute(sa.text("DELETE FROM image_members WHERE image_id = :id"), dict(id=gone))
                        conn.execute(sa.text("DELETE FROM images WHERE id = :id"), dict(id=gone))
                    written["deleted"].append(gone)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        phases.run(db.engine, "expand")
    finally:
        stop.set()
        thread.join()
    assert len(written["inserted"]) > 10  # the writer ran through the copy
    names = dict(db.rows("SELECT id, name FROM images"))
    assert all(i in names for i in written["inserted"])
    last_name = dict(written["updated"])
    assert all(names.get(i) == name for i, name in last_name.items() if i not in written["deleted"])
    assert not any(i in names for i in written["deleted"])
    assert db.scalar("SELECT COUNT(*) FROM image_properties WHERE image_id NOT IN (SELECT id FROM images)") == 0
    assert db.scalar("SELECT COUNT(*) FROM images") == IMAGES + len(written["inserted"]) - len(
        set(written["deleted"]))
    assert _leftovers(db) == []


def test_a_stopped_copy_is_cleared_by_the_next_run(make_database):
    """A run stopped after pointing a child's foreign key at its copy."""
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    expected = seed_pre_ocata(db, IMAGES)
    with db.engine.connect() as conn:
        copy = table_copy.TableCopy(lambda c, sql: c.exec_driver_sql(sql))
        conn.exec_driver_sql("CREATE TABLE _glance_new_images LIKE images")
        for event in table_copy.EVENTS:
            conn.exec_driver_sql(copy._trigger(event, "images", "_glance_new_images",
                                               copy._columns(conn, "images"), "id"))
        conn.exec_driver_sql("INSERT INTO _glance_new_images SELECT * FROM images")
        copy._point_foreign_keys(conn, "images", "_glance_new_images")
        conn.commit()
    assert _leftovers(db) != []
    for phase in ("expand", "migrate", "contract"):
        phases.run(db.engine, phase)
    assert _leftovers(db) == []
    assert differences(db.engine, "mysql", HEAD) == ""
    assert visibilities(db) == expected


def test_statements_the_copy_takes():
    assert table_copy.alteration("ALTER TABLE images MODIFY is_public BOOL NULL") == (
        "images", "MODIFY is_public BOOL NULL")
    assert table_copy.alteration("CREATE INDEX visibility_image_idx ON images (visibility)") == (
        "images", "ADD INDEX IF NOT EXISTS visibility_image_idx (visibility)")
    assert table_copy.alteration("ALTER TABLE images ADD COLUMN os_hidden BOOL") is None  # instant
    assert table_copy.alteration("ALTER TABLE images DROP COLUMN is_public") is None
