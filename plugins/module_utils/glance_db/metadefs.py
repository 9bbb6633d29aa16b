# -*- coding: utf-8 -*-
"""Metadata definitions: load, unload and export, with the rows glance-manage gives.

A load reads every file first, then works out the catalog Glance's
``load_metadefs`` would leave (merge / prefer_new / overwrite with Glance's
meanings), compares it with the database by natural key and writes only the
difference, in one transaction under the migration lock. Ids and timestamps
are the database's business; the rows' contents are Glance's. Meanwhile it
publishes its progress (progress.py): phase ``metadefs``, a step per kind of row
deleted, created or updated (``create 4 of 5, properties: 80/134``).
"""

from __future__ import annotations

import os

from .direct import connect_direct, parse_plain_url, read_with
from .errors import MetadefsError
from .metadefs_catalog import change_report, changes, diff_text, empty_catalog, glance_load, is_empty
from .metadefs_db import catalog_from, check_schema, read_catalog, write
from .metadefs_files import documents_of, export_files, read_files
from .options import RunOptions
from .profile import ServerProfile
from . import progress as run_progress
from .state import require_untouched_by_a_stopped_run

# What the module uses: the jobs, their error, and how a Result is shown.
__all__ = ["DEFAULT_PATH", "MetadefsError", "Result", "load", "settled_direct", "unload", "export",
           "change_report", "diff_text"]

DEFAULT_PATH = "/etc/glance/metadefs"


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
        self.warnings = []  # why the progress could not be published, if it could not


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
    before = read_with(conn, url, _settled_catalog)
    if before is None:  # no metadef tables, a refusal, anything else: load() reports it
        return None
    after = glance_load(before, documents, merge, prefer_new, overwrite)
    change_set = changes(before, after)
    return Result(change_set, before, after) if is_empty(change_set) else None


def _settled_catalog(queries):
    """The catalog read by the driver alone, once the database is found fit to load into."""
    before, _ids = catalog_from(queries.rows)
    if require_untouched_by_a_stopped_run(queries).stopped_run_shown:
        return None  # load() clears the stopped run's progress record, under the lock
    return before


def unload(engine, options=None, check_mode=False):
    """Delete every metadef row, as glance-manage db unload_metadefs does; return a Result."""
    return _change(engine, lambda catalog: empty_catalog(), check_mode, options)


def _change(engine, target_of, check_mode, options):
    _refuse_missing_sqlite(engine)
    with engine.connect() as conn:
        state = check_schema(conn)
        before, _ids = read_catalog(conn)
        conn.rollback()
    after = target_of(before)
    change_set = changes(before, after)
    if check_mode or (is_empty(change_set) and not state.stopped_run_shown):
        return Result(change_set, before, after)
    # The phases' lock, with the same options (profile.py), and the progress published under it.
    profile, options = ServerProfile.of_state(state), options or RunOptions()
    progress = run_progress.for_server(engine, profile, options)
    with profile.migration_lock(engine, options) as holder, progress.running("metadefs", holder):
        with engine.begin() as conn:
            # Read again under the lock: another run may have loaded meanwhile.
            before, ids = read_catalog(conn)
            after = target_of(before)
            change_set = changes(before, after)
            write(conn, before, ids, after, change_set, progress)
    result = Result(change_set, before, after)
    result.warnings = progress.warnings
    return result


def _refuse_missing_sqlite(engine):
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not url.database.startswith("file:") and not os.path.exists(url.database):
        raise MetadefsError("The SQLite database %s does not exist. Run glance_db_sync first." % url.database)


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
    return export_files(documents_of(catalog), path, force, check_mode)
