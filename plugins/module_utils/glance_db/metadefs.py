# -*- coding: utf-8 -*-
"""Metadata definitions: load, unload and export, with the rows glance-manage gives.

A load reads every file first, then works out the catalog Glance's
``load_metadefs`` would leave (merge / prefer_new / overwrite with Glance's
meanings), compares it with the database by natural key and writes only the
difference, in one transaction under the migration lock. Ids and timestamps
are the database's business; the rows' contents are Glance's.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import tempfile

from .connection import connect_direct, parse_plain_url
from .deps import sa
from .errors import GlanceDbError
from .options import RunOptions
from .profile import ServerProfile
from .state import on_connection, on_driver_connection, require_untouched_by_a_stopped_run

DEFAULT_PATH = "/etc/glance/metadefs"

# What the comparison looks at, in Glance's words; each a dict keyed by natural key.
KINDS = ("namespaces", "resource_types", "resource_type_associations", "properties", "objects", "tags")
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
NAMESPACE_FIELDS = ("display_name", "description", "visibility", "protected", "owner")


class MetadefsError(GlanceDbError):
    """Files or options a load cannot use; nothing has been written."""


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


# ---- the files

def read_files(path):
    """[(file, namespace document)] from a directory of *.json files or one file.

    Everything is checked before anything is written: a missing path, a
    directory without *.json files, a malformed file or one without what Glance
    needs is refused, naming the file (Glance logs these and goes on).
    """
    if not os.path.exists(path):
        raise MetadefsError(
            "The metadefs path %s does not exist. Give the directory of Glance's metadefs files "
            "(Glance ships them in etc/glance/metadefs) or one .json file as path." % path)
    if os.path.isfile(path):
        files = [path]
    else:
        files = sorted(os.path.join(path, name) for name in os.listdir(path)
                       if name.endswith(".json") and os.path.isfile(os.path.join(path, name)))
        if not files:
            raise MetadefsError("The metadefs directory %s holds no .json files. Give the directory "
                                "of Glance's metadefs files as path." % path)
    documents = []
    for name in files:
        try:
            with open(name, "rb") as handle:
                document = json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise MetadefsError("Cannot read the metadefs file %s: %s. Fix or remove it, then run "
                                "again; nothing has been loaded." % (name, exc))
        _check_document(name, document)
        documents.append((name, document))
    return documents


def _check_document(name, document):
    def refuse(what):
        raise MetadefsError("The metadefs file %s %s. Fix or remove it, then run again; nothing has "
                            "been loaded." % (name, what))

    if not isinstance(document, dict):
        refuse("is not a JSON object")
    if not isinstance(document.get("namespace"), str) or not document["namespace"]:
        refuse("has no \"namespace\" name")
    for key, kind in (("resource_type_associations", list), ("properties", dict),
                      ("objects", list), ("tags", list)):
        if not isinstance(document.get(key, kind()), kind):
            refuse("has \"%s\" that is not a JSON %s" % (key, "object" if kind is dict else "list"))
    for key in ("resource_type_associations", "objects", "tags"):
        for item in document.get(key, []):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                refuse("has an entry in \"%s\" without a \"name\"" % key)


# ---- the catalog: what the metadef tables hold, by natural key

def _schema_text(value):
    """A canonical text for a json_schema, so equal schemas compare equal."""
    return json.dumps(value, sort_keys=True)


def _parsed(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {"__unparsable__": text}  # compares unequal to anything a file holds


def empty_catalog():
    return dict((kind, {}) for kind in KINDS)


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


def glance_load(catalog, documents, merge=False, prefer_new=False, overwrite=False):
    """The catalog Glance's load_metadefs leaves, file by file, without touching a database."""
    result = copy.deepcopy(catalog)
    for _name, document in documents:
        ns = document["namespace"]
        values = dict((f, document.get(f)) for f in NAMESPACE_FIELDS)
        values["owner"] = document.get("owner", "admin")
        exists = ns in result["namespaces"]
        if exists and overwrite:
            _drop_namespace(result, ns)
            exists = False
        if not exists:
            result["namespaces"][ns] = values
        elif not merge:
            continue  # Glance skips a namespace that is already there
        elif prefer_new:
            result["namespaces"][ns] = values

        def put(kind, key, value):
            if key not in result[kind] or prefer_new:
                result[kind][key] = value

        for association in document.get("resource_type_associations", []):
            # A resource type that does not exist yet is created, protected, as Glance does.
            result["resource_types"].setdefault(association["name"], {"protected": True})
            put("resource_type_associations", (ns, association["name"]),
                {"properties_target": association.get("properties_target"),
                 "prefix": association.get("prefix")})
        for name, schema in document.get("properties", {}).items():
            put("properties", (ns, name), {"json_schema": schema})
        for obj in document.get("objects", []):
            put("objects", (ns, obj["name"]),
                {"description": obj.get("description"), "json_schema": obj.get("properties")})
        for tag in document.get("tags", []):
            put("tags", (ns, tag["name"]), {})
    return result


def _drop_namespace(catalog, ns):
    del catalog["namespaces"][ns]
    for kind in ("resource_type_associations", "properties", "objects", "tags"):
        for key in [k for k in catalog[kind] if k[0] == ns]:
            del catalog[kind][key]


def _same(kind, a, b):
    if kind in ("properties", "objects"):
        a, b = dict(a), dict(b)
        a["json_schema"], b["json_schema"] = _schema_text(a["json_schema"]), _schema_text(b["json_schema"])
    return a == b


def changes(before, after):
    """{created|updated|deleted: {kind: [natural key, ...]}} from one catalog to another."""
    result = dict((what, dict((kind, []) for kind in KINDS)) for what in ("created", "updated", "deleted"))
    for kind in KINDS:
        for key in sorted(set(before[kind]) | set(after[kind])):
            if key not in before[kind]:
                result["created"][kind].append(key)
            elif key not in after[kind]:
                result["deleted"][kind].append(key)
            elif not _same(kind, before[kind][key], after[kind][key]):
                result["updated"][kind].append(key)
    return result


def is_empty(change_set):
    return not any(keys for by_kind in change_set.values() for keys in by_kind.values())


def change_report(change_set):
    """The change set for a module result: natural keys as small dicts, empty kinds left out."""
    report = {}
    for what, by_kind in change_set.items():
        report[what] = {}
        for kind, keys in by_kind.items():
            if keys:
                report[what][kind] = [_key_dict(kind, key) for key in keys]
    return report


def _key_dict(kind, key):
    if kind in ("namespaces", "resource_types"):
        return key
    if kind == "resource_type_associations":
        return {"namespace": key[0], "resource_type": key[1]}
    return {"namespace": key[0], "name": key[1]}


def diff_text(catalog, change_set, side):
    """The affected entries of one side ('before' or 'after'), one per line, for --diff."""
    lines = []
    for what in ("deleted", "updated", "created"):
        if (side == "before" and what == "created") or (side == "after" and what == "deleted"):
            continue
        for kind in KINDS:
            for key in change_set[what][kind]:
                lines.append("%s %s: %s" % (kind, " / ".join(key) if isinstance(key, tuple) else key,
                                            json.dumps(catalog[kind][key], sort_keys=True, default=str)))
    return "".join(line + "\n" for line in lines)


# ---- writing

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


def write(conn, before, ids, after, change_set):
    """Turn ``before`` into ``after`` on ``conn`` (inside the caller's transaction)."""
    t = tables()
    now = _utcnow()
    for kind in DELETE_ORDER:
        for key in change_set["deleted"][kind]:
            conn.execute(t[kind].delete().where(_where(t, kind, key, ids)))
    for kind in KINDS:  # namespaces and resource types first: the others need their ids
        for key in change_set["created"][kind]:
            values = _row_values(kind, key, after[kind][key])
            values["created_at"] = now
            if kind == "resource_type_associations":
                values.update(namespace_id=ids["namespaces"][key[0]],
                              resource_type_id=ids["resource_types"][key[1]])
            elif kind not in ("namespaces", "resource_types"):
                values["namespace_id"] = ids["namespaces"][key[0]]
            inserted = conn.execute(t[kind].insert().values(values))
            if kind in ("namespaces", "resource_types"):
                ids[kind][key] = inserted.inserted_primary_key[0]
        for key in change_set["updated"][kind]:
            values = _row_values(kind, key, after[kind][key])
            values["updated_at"] = now
            conn.execute(t[kind].update().where(_where(t, kind, key, ids)).values(values))


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


def _options_error(merge, prefer_new, overwrite):
    if (prefer_new or overwrite) and not merge:
        return "prefer_new and overwrite need merge: true, as with glance-manage db load_metadefs."
    if prefer_new and overwrite:
        return "Give at most one of prefer_new and overwrite, as glance-manage db load_metadefs asks."
    return None


class Result(object):
    """What a run found and did: the change set, and the catalogs on both sides."""

    def __init__(self, change_set, before, after):
        self.changes = change_set
        self.before = before
        self.after = after
        self.changed = not is_empty(change_set)


def load(engine, path, options=None, merge=False, prefer_new=False, overwrite=False, check_mode=False):
    """Load the files at ``path`` as glance-manage db load_metadefs would; return a Result."""
    error = _options_error(merge, prefer_new, overwrite)
    if error:
        raise MetadefsError(error)
    documents = read_files(path)
    return _change(engine, lambda catalog: glance_load(catalog, documents, merge, prefer_new, overwrite),
                   check_mode, options)


def settled_direct(raw_url, path, merge=False, prefer_new=False, overwrite=False):
    """A Result when the load has nothing to do, read with the database driver alone; else None.

    The every-deploy load finds everything in place; SQLAlchemy's import is most
    of such a run. The files are read and checked first, as for load(). None
    (load() then decides, and reports any error) when the URL needs
    SQLAlchemy, the driver is missing, a query fails, or something differs.
    """
    error = _options_error(merge, prefer_new, overwrite)
    if error:
        raise MetadefsError(error)
    documents = read_files(path)
    url = parse_plain_url(raw_url)
    if url is None or (url.backend == "sqlite" and not os.path.isfile(url.database)):
        return None
    try:
        conn = connect_direct(url)
    except Exception:  # load() meets it again and reports it
        return None
    if conn is None:
        return None
    try:
        def rows(sql):
            cursor = conn.cursor()
            try:
                cursor.execute(sql)
                return [tuple(row) for row in cursor.fetchall()]
            finally:
                cursor.close()
        before, _ids = catalog_from(rows)
        require_untouched_by_a_stopped_run(on_driver_connection(conn, url))
    except Exception:  # no metadef tables, a refusal, anything else: load() reports it
        return None
    finally:
        conn.close()
    after = glance_load(before, documents, merge, prefer_new, overwrite)
    change_set = changes(before, after)
    return Result(change_set, before, after) if is_empty(change_set) else None


def unload(engine, options=None, check_mode=False):
    """Delete every metadef row, as glance-manage db unload_metadefs does; return a Result."""
    return _change(engine, lambda catalog: empty_catalog(), check_mode, options)


def _change(engine, target_of, check_mode, options):
    _refuse_missing_sqlite(engine)
    with engine.connect() as conn:
        profile = ServerProfile.of_state(check_schema(conn))
        before, _ids = read_catalog(conn)
        conn.rollback()
    after = target_of(before)
    change_set = changes(before, after)
    if check_mode or is_empty(change_set):
        return Result(change_set, before, after)
    # The phases' lock, with the same options (profile.py).
    with profile.migration_lock(engine, options or RunOptions()):
        with engine.begin() as conn:
            # Read again under the lock: another run may have loaded meanwhile.
            before, ids = read_catalog(conn)
            after = target_of(before)
            change_set = changes(before, after)
            write(conn, before, ids, after, change_set)
    return Result(change_set, before, after)


def _refuse_missing_sqlite(engine):
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not url.database.startswith("file:") and not os.path.exists(url.database):
        raise MetadefsError("The SQLite database %s does not exist. Run glance_db_sync first." % url.database)


# ---- export

def documents_of(catalog):
    """{namespace: document} in the layout Glance's export writes (and its load reads)."""
    documents = {}
    for ns in sorted(catalog["namespaces"]):
        row = catalog["namespaces"][ns]
        documents[ns] = {
            "namespace": ns,
            "display_name": row["display_name"],
            "description": row["description"],
            "visibility": row["visibility"],
            "protected": row["protected"],
            # Glance's export leaves the owner out, so its load makes it "admin"; we keep it.
            "owner": row["owner"],
            "resource_type_associations": [
                {"name": rt, "prefix": value["prefix"], "properties_target": value["properties_target"]}
                for (n, rt), value in sorted(catalog["resource_type_associations"].items()) if n == ns],
            "properties": dict((name, value["json_schema"])
                               for (n, name), value in sorted(catalog["properties"].items()) if n == ns),
            "objects": [{"name": name, "description": value["description"], "properties": value["json_schema"]}
                        for (n, name), value in sorted(catalog["objects"].items()) if n == ns],
            "tags": [{"name": name} for (n, name) in sorted(catalog["tags"]) if n == ns],
        }
    return documents


def file_name(ns):
    if "/" in ns or "\0" in ns or ns in (".", ".."):
        raise MetadefsError("The namespace %r cannot be a file name; it cannot be exported as "
                            "<namespace>.json." % ns)
    return ns + ".json"


def export(engine, path, force=False, check_mode=False):
    """Write one <namespace>.json per namespace into ``path``.

    Returns {file: created|updated|unchanged}. A file that exists with other
    contents is refused (before anything is written) unless ``force``.
    """
    _refuse_missing_sqlite(engine)
    with engine.connect() as conn:
        check_schema(conn)
        catalog, _ids = read_catalog(conn)
        conn.rollback()
    if os.path.exists(path) and not os.path.isdir(path):
        raise MetadefsError("The export path %s is not a directory. Give a directory as path." % path)
    planned = {}
    refused = []
    for ns, document in documents_of(catalog).items():
        target = os.path.join(path, file_name(ns))
        text = json.dumps(document, indent=4) + "\n"
        if not os.path.exists(target):
            planned[target] = ("created", text)
            continue
        with open(target, "rb") as handle:
            current = handle.read()
        if current == text.encode("ascii"):
            planned[target] = ("unchanged", text)
        else:
            planned[target] = ("updated", text)
            if not force:
                refused.append(target)
    if refused:
        raise MetadefsError(
            "The export would overwrite %d file%s with other contents (%s). Move %s away, or set "
            "force: true to overwrite; nothing has been written." % (
                len(refused), "s" if len(refused) > 1 else "", ", ".join(refused),
                "them" if len(refused) > 1 else "it"))
    if not check_mode:
        if not os.path.isdir(path):
            os.makedirs(path)
        for target, (what, text) in planned.items():
            if what != "unchanged":
                _write_file(target, text)
    return dict((target, what) for target, (what, _text) in planned.items())


def _write_file(target, text):
    """Write a whole file or nothing: a temporary file beside it, then a rename."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".metadefs-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
