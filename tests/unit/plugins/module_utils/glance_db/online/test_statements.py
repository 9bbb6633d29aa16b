"""online.statements.lock_none_form: the LOCK=NONE form of each DDL statement (no database)."""

from __future__ import annotations

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.online.statements import lock_none_form


@pytest.mark.parametrize("sql,online", [
    ("ALTER TABLE images ADD COLUMN os_hidden BOOL", "ALTER TABLE images ADD COLUMN os_hidden BOOL, LOCK=NONE"),
    ("  alter table `images` DROP COLUMN is_public;\n", "alter table `images` DROP COLUMN is_public, LOCK=NONE"),
    ("CREATE INDEX ix_images_os_hidden ON images (os_hidden)",
     "CREATE INDEX ix_images_os_hidden ON images (os_hidden) LOCK=NONE"),
    ("CREATE UNIQUE INDEX uq_x ON t (a, b);", "CREATE UNIQUE INDEX uq_x ON t (a, b) LOCK=NONE"),
    # MariaDB's DROP INDEX takes no LOCK clause: it becomes an ALTER TABLE.
    ("DROP INDEX ix_images_is_public ON images", "ALTER TABLE images DROP INDEX ix_images_is_public, LOCK=NONE"),
    ("drop index `ix` on `t`;", "ALTER TABLE `t` DROP INDEX `ix`, LOCK=NONE"),
])
def test_online_form(sql, online):
    assert lock_none_form(sql) == online


@pytest.mark.parametrize("sql", [
    "CREATE TABLE node_reference (id INTEGER)",
    "DROP TABLE cached_images",
    "INSERT INTO images VALUES (1)",
    "UPDATE images SET visibility = 'public'",
    "CREATE TRIGGER insert_visibility BEFORE INSERT ON images FOR EACH ROW SET @x = 1",
    "DROP INDEX ix ON t USING BTREE",  # not the plain form: left as it is
])
def test_statements_without_a_lock_clause(sql):
    assert lock_none_form(sql) is None
