# -*- coding: utf-8 -*-
"""Metadata definitions in the database: the metadef tables read into a catalog
(read_catalog, catalog_from) and a change set written to them (write)."""

from __future__ import annotations

import datetime
import json

from .deps import sa
from .errors import MetadefsError
from .metadefs_catalog import KINDS, NAMESPACE_FIELDS, empty_catalog
from .progress import Progress
from .state import on_connection, require_untouched_by_a_stopped_run

TABLE_OF = {
    "namespaces": "metadef_namespaces",
    "resource_types": "metadef_resource_types",
    "resource_type_associations": "metadef_namespace_resource_types",
    "properties": "metadef_properties",
    "objects": "metadef_objects",
    "tags": "metadef_tags",
}
# Children go before their namespace when deleting (foreign keys).
DELETE_ORDER = ("properties", "objects", "tags", "resource_type_associations", "namespaces", "resource_types")
# The writes in their order: deletes, then per kind (namespaces and resource types first:
# the others need their ids) creates and updates. Each is a step of the progress.
WRITES = tuple(("deleted", kind) for kind in DELETE_ORDER) + tuple(
    (what, kind) for kind in KINDS for what in ("created", "updated"))
VERB = {"deleted": "delete", "created": "create", "updated": "update"}

_tables = {}


def tables():
    """The metadef tables, with the columns we read and write (SQLAlchemy Core)."""
    if not _tables:
        meta = sa.MetaData()

        def stamps():
            return [sa.Column("created_at", sa.DateTime()), sa.Column("updated_at", sa.DateTime())]

        _tables["namespaces"] = sa.Table(
            "metadef_namespaces", meta, sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("namespace", sa.String(80)),
            *([sa.Column(name, sa.Boolean if name == "protected" else sa.Text) for name in NAMESPACE_FIELDS]
              + stamps()))
        _tables["resource_types"] = sa.Table(
            "metadef_resource_types", meta, sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(80)), sa.Column("protected", sa.Boolean), *stamps())
        _tables["resource_type_associations"] = sa.Table(
            "metadef_namespace_resource_types", meta,
            sa.Column("resource_type_id", sa.Integer, primary_key=True),
            sa.Column("namespace_id", sa.Integer, primary_key=True),
            sa.Column("properties_target", sa.String(80)), sa.Column("prefix", sa.String(80)), *stamps())
        for kind, extra in (("properties", ["json_schema"]), ("objects", ["description", "json_schema"]),
                            ("tags", [])):
            _tables[kind] = sa.Table(
                TABLE_OF[kind], meta, sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("namespace_id", sa.Integer), sa.Column("name", sa.String(80)),
                *([sa.Column(name, sa.Text) for name in extra] + stamps()))
    return _tables


def _parsed(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {"__unparsable__": text}  # compares unequal to anything a file holds


_CATALOG_SQL = {
    "namespaces": "SELECT id, namespace, %s FROM metadef_namespaces" % ", ".join(NAMESPACE_FIELDS),
    "resource_types": "SELECT id, name, protected FROM metadef_resource_types",
    "resource_type_associations": "SELECT namespace_id, resource_type_id, properties_target, prefix "
                                  "FROM metadef_namespace_resource_types",
    "properties": "SELECT id, namespace_id, name, json_schema FROM metadef_properties",
    "objects": "SELECT id, namespace_id, name, description, json_schema FROM metadef_objects",
    "tags": "SELECT id, namespace_id, name FROM metadef_tags",
}


def _bool(value):
    return None if value is None else bool(value)  # 0/1 on SQLite and MySQL


def read_catalog(conn):
    """The catalog in the database, with the ids needed to write to it."""
    return catalog_from(lambda sql: [tuple(row) for row in conn.exec_driver_sql(sql)])


def catalog_from(rows):
    """(catalog, ids) from ``rows(sql)`` -> tuples (SQLAlchemy or the driver alone)."""
    catalog = empty_catalog()
    ids = dict((kind, {}) for kind in KINDS)
    ns_names = {}
    for row in rows(_CATALOG_SQL["namespaces"]):
        ns_id, ns = row[0], row[1]
        fields = dict(zip(NAMESPACE_FIELDS, row[2:]))
        fields["protected"] = _bool(fields["protected"])
        ns_names[ns_id] = ns
        catalog["namespaces"][ns] = fields
        ids["namespaces"][ns] = ns_id
    rt_names = {}
    for rt_id, name, protected in rows(_CATALOG_SQL["resource_types"]):
        rt_names[rt_id] = name
        catalog["resource_types"][name] = {"protected": _bool(protected)}
        ids["resource_types"][name] = rt_id
    for ns_id, rt_id, properties_target, prefix in rows(_CATALOG_SQL["resource_type_associations"]):
        catalog["resource_type_associations"][(ns_names[ns_id], rt_names[rt_id])] = {
            "properties_target": properties_target, "prefix": prefix}
    for row_id, ns_id, name, json_schema in rows(_CATALOG_SQL["properties"]):
        key = (ns_names[ns_id], name)
        catalog["properties"][key] = {"json_schema": _parsed(json_schema)}
        ids["properties"][key] = row_id
    for row_id, ns_id, name, description, json_schema in rows(_CATALOG_SQL["objects"]):
        key = (ns_names[ns_id], name)
        catalog["objects"][key] = {"description": description, "json_schema": _parsed(json_schema)}
        ids["objects"][key] = row_id
    for row_id, ns_id, name in rows(_CATALOG_SQL["tags"]):
        key = (ns_names[ns_id], name)
        catalog["tags"][key] = {}
        ids["tags"][key] = row_id
    return catalog, ids


def _utcnow():
    # Glance stores naive UTC (oslo_utils.timeutils.utcnow()).
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _row_values(kind, key, value):
    if kind == "namespaces":
        return dict(value, namespace=key)
    if kind == "resource_types":
        return dict(value, name=key)
    if kind == "resource_type_associations":
        return dict(value)
    values = {"name": key[1]}
    if kind == "properties":
        values["json_schema"] = json.dumps(value["json_schema"])
    elif kind == "objects":
        values.update(description=value["description"], json_schema=json.dumps(value["json_schema"]))
    return values


def _where(t, kind, key, ids):
    table = t[kind]
    if kind == "resource_type_associations":
        return sa.and_(table.c.namespace_id == ids["namespaces"][key[0]],
                       table.c.resource_type_id == ids["resource_types"][key[1]])
    return table.c.id == ids[kind][key]


def write(conn, before, ids, after, change_set, progress=None):
    """Turn ``before`` into ``after`` on ``conn`` (inside the caller's transaction); each kind
    of row deleted, created or updated is a step of ``progress`` (progress.Progress)."""
    t = tables()
    now = _utcnow()
    progress = progress or Progress()
    steps = [(what, kind) for what, kind in WRITES if change_set[what][kind]]
    for index, (what, kind) in enumerate(steps, 1):
        keys = change_set[what][kind]
        progress.step(VERB[what], kind.replace("_", " "), index, len(steps), table=TABLE_OF[kind],
                      rows_total=len(keys))
        for done, key in enumerate(keys, 1):
            if what == "deleted":
                conn.execute(t[kind].delete().where(_where(t, kind, key, ids)))
            elif what == "created":
                _create(conn, t, kind, key, after[kind][key], ids, now)
            else:
                values = _row_values(kind, key, after[kind][key])
                values["updated_at"] = now
                conn.execute(t[kind].update().where(_where(t, kind, key, ids)).values(values))
            progress.rows(done)


def _create(conn, t, kind, key, value, ids, now):
    values = _row_values(kind, key, value)
    values["created_at"] = now
    if kind == "resource_type_associations":
        values.update(namespace_id=ids["namespaces"][key[0]], resource_type_id=ids["resource_types"][key[1]])
    elif kind not in ("namespaces", "resource_types"):
        values["namespace_id"] = ids["namespaces"][key[0]]
    inserted = conn.execute(t[kind].insert().values(values))
    if kind in ("namespaces", "resource_types"):
        ids[kind][key] = inserted.inserted_primary_key[0]


def check_schema(conn):
    """Refuse a database without the metadef tables (not synced far enough), or one a stopped
    run left things in; return its DatabaseState."""
    present = set(sa.inspect(conn).get_table_names())
    missing = sorted(name for name in TABLE_OF.values() if name not in present)
    if missing:
        raise MetadefsError(
            "The database has no %s table%s: it is not a Glance database synced far enough for "
            "metadata definitions. Run glance_db_sync first." % (
                ", ".join(missing), "s" if len(missing) > 1 else ""))
    return require_untouched_by_a_stopped_run(on_connection(conn))
