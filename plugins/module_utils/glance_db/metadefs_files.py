# -*- coding: utf-8 -*-
"""Metadata definitions as files: Glance's *.json files read and checked before a
load, and the catalog written out as one <namespace>.json each (export)."""

from __future__ import annotations

import json
import os
import tempfile

from .errors import MetadefsError


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


def export_files(documents, path, force=False, check_mode=False):
    """Write ``documents`` ({namespace: document}) as one <namespace>.json each into ``path``.

    Returns {file: created|updated|unchanged}. A file that exists with other
    contents is refused (before anything is written) unless ``force``.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise MetadefsError("The export path %s is not a directory. Give a directory as path." % path)
    planned = {}
    refused = []
    for ns, document in documents.items():
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
