"""Walk every revision one at a time on every engine, checking what each one does.

Also Keystone's rule, by test: an expand revision only adds or widens, a contract
revision only removes or narrows.
"""

from __future__ import annotations

import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import (
    CONTRACT, EXPAND, GRAPH,
)
from parity import schema_dump

ARTIFACT_TABLES = {"artifacts", "artifact_blobs", "artifact_blob_locations",
                   "artifact_dependencies", "artifact_properties", "artifact_tags"}


def _columns(db, table):
    return {c["name"]: c for c in sa.inspect(db.engine).get_columns(table)}


def _indexes(db, table):
    return {i["name"] for i in sa.inspect(db.engine).get_indexes(table)}


def _tables(db):
    return set(sa.inspect(db.engine).get_table_names())


def _seed_before(db, revision_id):
    """Rows a revision is expected to transform."""
    if revision_id == "mitaka02":
        db.execute("INSERT INTO metadef_resource_types (name, protected, created_at) "
                   "VALUES ('OS::Nova::Instance', :f, CURRENT_TIMESTAMP)", f=False)


def _check_effect(db, revision_id):
    """Assert the one thing each non-empty revision is for."""
    tables = _tables(db)
    if revision_id == "liberty":
        assert {"images", "image_properties", "image_locations", "image_members", "image_tags",
                "tasks", "task_info", "metadef_namespaces", "metadef_objects",
                "metadef_properties", "metadef_resource_types", "metadef_tags",
                "metadef_namespace_resource_types"} | ARTIFACT_TABLES <= tables
    elif revision_id == "mitaka01":
        assert {"created_at_image_idx", "updated_at_image_idx"} <= _indexes(db, "images")
    elif revision_id == "mitaka02":
        names = [r[0] for r in db.rows("SELECT name FROM metadef_resource_types")]
        assert names == ["OS::Nova::Server"]
    elif revision_id == "ocata_expand01":
        columns = _columns(db, "images")
        assert columns["visibility"]["nullable"] and columns["is_public"]["nullable"]
        assert "visibility_image_idx" in _indexes(db, "images")
    elif revision_id == "ocata_contract01":
        columns = _columns(db, "images")
        assert "is_public" not in columns and not columns["visibility"]["nullable"]
        assert "shared" in str(columns["visibility"]["default"])
        assert "ix_images_is_public" not in _indexes(db, "images")
    elif revision_id == "pike_contract01":
        assert not ARTIFACT_TABLES & tables
    elif revision_id == "rocky_expand01":
        assert not _columns(db, "images")["os_hidden"]["nullable"]
        assert "os_hidden_image_idx" in _indexes(db, "images")
    elif revision_id == "rocky_expand02":
        assert {"os_hash_algo", "os_hash_value"} <= set(_columns(db, "images"))
        assert "os_hash_value_image_idx" in _indexes(db, "images")
    elif revision_id == "wallaby_expand01":
        assert {"image_id", "request_id", "user_id"} <= set(_columns(db, "tasks"))
        assert "ix_tasks_image_id" in _indexes(db, "tasks")
    elif revision_id == "2024_1_expand01":
        assert {"node_reference", "cached_images"} <= tables


def _nothing():
    pass


def _changes_nothing(revision):
    """A revision whose upgrade() is only ``pass`` (a release that keeps the branches in step)."""
    return revision.script.upgrade.__code__.co_code == _nothing.__code__.co_code


def _schema(db):
    dumped = schema_dump.dump(db.engine)
    return dumped["tables"], dumped.get("triggers", {})


def schema_changes(before, after):
    """(kind, name) pairs describing how ``after`` differs from ``before``."""
    (tables_a, triggers_a), (tables_b, triggers_b) = before, after
    changes = []
    for name in set(tables_a) - set(tables_b):
        changes.append(("drop_table", name))
    for name in set(tables_b) - set(tables_a):
        changes.append(("add_table", name))
    for name in set(tables_a) & set(tables_b):
        cols_a = {c["name"]: c for c in tables_a[name]["columns"]}
        cols_b = {c["name"]: c for c in tables_b[name]["columns"]}
        changes += [("drop_column", "%s.%s" % (name, c)) for c in set(cols_a) - set(cols_b)]
        changes += [("add_column", "%s.%s" % (name, c)) for c in set(cols_b) - set(cols_a)]
        for col in set(cols_a) & set(cols_b):
            a, b = cols_a[col], cols_b[col]
            if a["nullable"] and not b["nullable"]:
                changes.append(("narrow_column", "%s.%s" % (name, col)))
            if a["type"] != b["type"]:
                changes.append(("retype_column", "%s.%s" % (name, col)))
        for key, kind in (("indexes", "index"), ("unique_constraints", "unique"),
                          ("foreign_keys", "foreign_key")):
            names_a = {i["name"] for i in tables_a[name].get(key, [])}
            names_b = {i["name"] for i in tables_b[name].get(key, [])}
            changes += [("drop_" + kind, "%s.%s" % (name, i)) for i in names_a - names_b]
            changes += [("add_" + kind, "%s.%s" % (name, i)) for i in names_b - names_a]
    changes += [("drop_trigger", t) for t in set(triggers_a) - set(triggers_b)]
    changes += [("add_trigger", t) for t in set(triggers_b) - set(triggers_a)]
    return sorted(changes)


def _step(db, revision_id):
    """Apply exactly one revision, the way an operator would reach it."""
    revision = GRAPH.get(revision_id)
    online = revision.branch is not None and db.engine_name != "postgresql"
    phase = {EXPAND: "expand", CONTRACT: "contract"}.get(revision.branch) if online else "sync"
    return phases.run(db.engine, phase, version=revision_id)


def test_walk_every_revision(database):
    applied = set()
    schema = _schema(database)
    for revision in GRAPH.order:
        _seed_before(database, revision.id)
        outcome = _step(database, revision.id)
        applied.add(revision.id)
        assert outcome.applied_revisions == [revision.id]
        assert outcome.after["revisions"] == GRAPH.rows_for(applied)
        assert sorted(r[0] for r in database.rows("SELECT version_num FROM alembic_version")) \
            == GRAPH.rows_for(applied)
        _check_effect(database, revision.id)

        new_schema = _schema(database)
        changes = schema_changes(schema, new_schema)
        if _changes_nothing(revision):
            assert changes == [], "%s should change nothing: %s" % (revision.id, changes)
        if revision.branch == EXPAND:
            bad = [c for c in changes if c[0].startswith(("drop_", "narrow_", "retype_"))]
            assert bad == [], "expand revision %s removes or narrows: %s" % (revision.id, bad)
        if revision.branch == CONTRACT:
            bad = [c for c in changes if c[0].startswith("add_")]
            assert bad == [], "contract revision %s adds: %s" % (revision.id, bad)
        schema = new_schema
    assert database.scalar("SELECT COUNT(*) FROM alembic_version") == 1
