# -*- coding: utf-8 -*-
"""Metadata definitions as a catalog: what the metadef tables hold, by natural key.

Pure data, no database and no file: the catalog Glance's ``load_metadefs`` would
leave (glance_load), the change set from one catalog to another (changes), and
how a change set is shown (change_report, diff_text).
"""

from __future__ import annotations

import copy
import json

# What the comparison looks at, in Glance's words; each a dict keyed by natural key.
KINDS = ("namespaces", "resource_types", "resource_type_associations", "properties", "objects", "tags")
NAMESPACE_FIELDS = ("display_name", "description", "visibility", "protected", "owner")


def _schema_text(value):
    """A canonical text for a json_schema, so equal schemas compare equal."""
    return json.dumps(value, sort_keys=True)


def empty_catalog():
    return dict((kind, {}) for kind in KINDS)


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
