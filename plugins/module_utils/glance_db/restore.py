# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The way back: restore a dump that glance_db_backup took.

Glance supports no downgrade: "the only method available to get back to a prior
database version is to restore from backup". Before anything changes, the dump
is checked against its record (``<dump>.json``, written by backup: sha256, size,
engine), and a database that holds tables is replaced only when asked (force).

Then, under the migration lock, the database is cleared (every table, a stopped
run's leftovers included: a restore replaces everything, so it clears them
rather than refusing while they stand) and loaded by the server's own client:

* MySQL/MariaDB: the ``mysql`` client reads the dump (``DROP TABLE IF EXISTS``
  and ``CREATE TABLE`` per table, then its rows). A failure half-way leaves the
  tables loaded until then; a re-run clears them first and completes.
* PostgreSQL: the tables, sequences and enum types are dropped in one
  transaction, then ``pg_restore --single-transaction``: a failure rolls the
  load back and leaves the database empty; a re-run completes.
* SQLite: Python's backup API copies the dump over the database in one
  transaction: a failure leaves the database as it was.

The dump is only ever read. The clients get the URL's TLS options and the
password in the environment only (clients.py), as backup's do.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

from . import backup
from . import clients
from .deps import sa
from .errors import GlanceDbError
from .options import RunOptions
from .profile import ServerProfile

TOOLS = {"mysql": "mysql", "postgresql": "pg_restore", "sqlite": "sqlite3 backup API"}
NEXT_TRY = "Fix the cause, then run again with force: true; a restore clears the database first, so a re-run completes."


class RestoreRefused(GlanceDbError):
    """Nothing was changed: the dump or the target is not what a restore needs."""


class RestoreFailed(GlanceDbError):
    """The restore started and did not complete."""


# ---- the dump and its record
def newest(directory, engine_name, database):
    """The newest dump in ``directory`` whose record names ``database`` on ``engine_name``."""
    if not os.path.isdir(directory):
        raise RestoreRefused("The backup directory %s does not exist: give the directory glance_db_backup wrote "
                             "to (the role's glance_db_backup_dir), or the dump's path." % directory)
    found = []
    for name in os.listdir(directory):
        if not name.endswith(backup.MANIFEST_SUFFIX):
            continue
        dump = os.path.join(directory, name[:-len(backup.MANIFEST_SUFFIX)])
        try:
            record = _load_record(dump)
        except RestoreRefused:
            continue  # not a record of ours, or unreadable: not a candidate
        if record.get("engine") == engine_name and record.get("database") == database and os.path.isfile(dump):
            found.append((record.get("taken_at") or "", name, dump))
    if not found:
        raise RestoreRefused("No dump of the %s database %s in %s (no record <dump>.json there names it). Give "
                             "the dump's path, or take one with glance_db_backup first." % (engine_name, database,
                                                                                            directory))
    return max(found)[2]


def _load_record(dump):
    manifest = backup.manifest_path(dump)
    try:
        with open(manifest, "rb") as handle:
            record = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        raise RestoreRefused("The dump %s has no record beside it (%s, written by glance_db_backup with the dump): "
                             "its checksum cannot be checked, so it is not restored. Restore a dump that "
                             "glance_db_backup took with its record; nothing was changed." % (dump, manifest))
    except (OSError, ValueError) as exc:
        raise RestoreRefused("The record %s of the dump cannot be read (%s); nothing was changed. Restore "
                             "another dump." % (manifest, exc))
    if not isinstance(record, dict) or not all(key in record for key in ("sha256", "size", "engine")):
        raise RestoreRefused("The record %s is not one glance_db_backup writes (it lacks sha256, size or engine); "
                             "nothing was changed. Restore another dump." % manifest)
    return record


def _open_checked(dump, record):
    """The dump, opened for reading, once its size and sha256 are those recorded."""
    try:
        fd = os.open(dump, os.O_RDONLY)
    except FileNotFoundError:
        raise RestoreRefused("The dump %s does not exist: give the path glance_db_backup returned (backup.path); "
                             "nothing was changed." % dump)
    try:
        size = os.fstat(fd).st_size
        if size != record["size"]:
            raise RestoreRefused("The dump %s is %d bytes, but its record says %d: it is damaged or was changed, "
                                 "and is not restored; nothing was changed. Restore another dump."
                                 % (dump, size, record["size"]))
        with os.fdopen(os.dup(fd), "rb") as handle:
            digest = backup.sha256_of_file(handle)
        if digest != record["sha256"]:
            raise RestoreRefused("The dump %s does not have the sha256 its record gives (%s, recorded %s): it is "
                                 "damaged or was changed, and is not restored; nothing was changed. Restore "
                                 "another dump." % (dump, digest, record["sha256"]))
    except BaseException:
        os.close(fd)
        raise
    return fd


# ---- what is there
def _holds(held):
    return bool(held["rows"] or held["revisions"])


def _summary(held):
    """``revisions mitaka02; 19 tables, 56 rows (image_locations 20, image_members 16, images 20)``"""
    revisions = ", ".join(held.get("revisions") or []) or "none"
    rows = held.get("rows") or {}
    if not rows:
        return "revisions %s; no tables" % revisions
    filled = ", ".join("%s %d" % (table, count) for table, count in sorted(rows.items()) if count)
    return "revisions %s; %d tables, %d rows%s" % (revisions, len(rows), sum(rows.values()),
                                                   " (%s)" % filled if filled else "")


# ---- clearing and loading
def _clear_mysql(engine):
    with engine.connect() as conn:
        # Views first, should there be any; then every table, foreign keys unchecked (any order works).
        quote = conn.dialect.identifier_preparer.quote
        kinds = conn.execute(sa.text("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                                     "WHERE TABLE_SCHEMA = DATABASE()")).fetchall()
        views = [quote(name) for name, kind in kinds if kind == "VIEW"]
        tables = [quote(name) for name, kind in kinds if kind != "VIEW"]
        conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
        if views:
            conn.exec_driver_sql("DROP VIEW IF EXISTS %s" % ", ".join(views))
        if tables:
            conn.exec_driver_sql("DROP TABLE IF EXISTS %s" % ", ".join(tables))
        conn.exec_driver_sql("SET SESSION foreign_key_checks = 1")
        conn.commit()


_PG_OBJECTS = (
    ("VIEW", "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
             "WHERE n.nspname = current_schema() AND c.relkind IN ('v', 'm')"),
    ("TABLE", "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
              "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"),
    ("SEQUENCE", "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                 "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'S'"),
    ("TYPE", "SELECT t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
             "WHERE n.nspname = current_schema() AND t.typtype = 'e'"),
)


def _clear_postgresql(engine):
    """Everything of Glance's in the schema, in one transaction (PostgreSQL's DDL is transactional)."""
    with engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.quote
        for kind, query in _PG_OBJECTS:
            names = [quote(row[0]) for row in conn.execute(sa.text(query))]
            if names:
                conn.exec_driver_sql("DROP %s IF EXISTS %s CASCADE" % (kind, ", ".join(names)))


def _load_mysql(engine, fd, run_command, tool):
    url = engine.url
    # --skip-reconnect: a connection lost half-way fails the restore, instead of the rest loading into a new session.
    command = [tool] + clients.mysql_options(url) + ["--batch", "--binary-mode", "--skip-reconnect", "--", url.database]
    clients.run(run_command, command, clients.mysql_environment(url), "mysql", RestoreFailed, stdin=fd)


def _load_postgresql(engine, fd, run_command, tool):
    url = engine.url
    # --no-owner: the objects become the restoring user's (the dump names the owner it was taken from).
    command = ([tool] + clients.pg_options(url) +
               ["--no-owner", "--single-transaction", "--exit-on-error", "--dbname=" + url.database,
                "/dev/fd/%d" % fd])
    clients.run(run_command, command, clients.pg_environment(url), "pg_restore", RestoreFailed, pass_fds=[fd])


def _load_sqlite(engine, fd):
    target_path = engine.url.database
    source = sqlite3.connect("file:/dev/fd/%d?mode=ro&immutable=1" % fd, uri=True)
    try:
        target = sqlite3.connect(target_path)
        try:
            source.backup(target)  # one write transaction on the target: all or nothing
        except sqlite3.Error as exc:
            raise RestoreFailed("the SQLite backup API failed: %s" % exc)
        finally:
            target.close()
    finally:
        source.close()


# What a failure half-way leaves, per engine.
LEFT = {
    "mysql": "The database holds what the mysql client loaded until it stopped (each table the dump creates "
             "replaces its own; the others were dropped before the load)",
    "postgresql": "The database is empty: its tables were dropped, and pg_restore's single transaction was "
                  "rolled back",
    "sqlite": "The database is as it was: SQLite's backup writes in one transaction, which was rolled back",
}


def _load(engine, fd, run_command, tools):
    backend = engine.url.get_backend_name()
    if backend == "mysql":
        _clear_mysql(engine)
        _load_mysql(engine, fd, run_command, tools["mysql"])
    elif backend == "postgresql":
        _clear_postgresql(engine)
        _load_postgresql(engine, fd, run_command, tools["pg_restore"])
    else:
        _load_sqlite(engine, fd)


# ---- the whole run
def run(engine, run_command, path=None, backup_dir=None, force=False, check_mode=False, options=None,
        mysql="mysql", pg_restore="pg_restore"):
    """Restore a dump (``path``, or the newest in ``backup_dir`` for this database) into ``engine``'s
    database; the module's result. ``run_command`` as in backup.take, with ``pass_fds``."""
    if (path is None) == (backup_dir is None):
        raise RestoreRefused("Give either path (the dump glance_db_backup returned) or backup_dir (its newest "
                             "dump of this database is restored), not %s." % ("both" if path else "neither"))
    url = engine.url
    backend = url.get_backend_name()
    if backend == "sqlite" and (not url.database or url.database == ":memory:" or
                                not os.path.isdir(os.path.dirname(os.path.abspath(url.database)))):
        raise RestoreRefused("The SQLite database %s cannot be restored into: give the path of its file, in a "
                             "directory that exists." % (url.database or "(none)"))
    if path is None:
        path = newest(backup_dir, backend, url.database)
    if not os.path.isfile(path):
        raise RestoreRefused("The dump %s does not exist: give the path glance_db_backup returned (backup.path), "
                             "or backup_dir; nothing was changed." % path)
    record = _load_record(path)
    if record["engine"] != backend:
        raise RestoreRefused("The dump %s is of a %s database; the connection names a %s one. Restore it into "
                             "a %s database; nothing was changed." % (path, record["engine"], backend,
                                                                      record["engine"]))
    fd = _open_checked(path, record)
    try:
        dump = dict((key, record.get(key)) for key in (
            "sha256", "size", "engine", "database", "tool", "taken_at", "revisions", "rows"))
        dump["path"] = path
        before = backup.describe(engine)
        _refuse_unless_forced(before, force, url.database, dump)
        if check_mode:
            msg = "Would replace the database %s (%s; %d bytes) with the dump %s taken %s (%s; %d bytes)." % (
                url.database, _summary(before) if _holds(before) else "empty", before["size"], path,
                record.get("taken_at"), _summary(record), record["size"])
            return _result(True, msg, dump, before, {"revisions": dump["revisions"], "rows": dump["rows"]}, None)
        started = time.monotonic()
        with ServerProfile.read(engine).migration_lock(engine, options or RunOptions()):
            before = backup.describe(engine)  # again, under the lock: what is replaced
            _refuse_unless_forced(before, force, url.database, dump)
            try:
                _load(engine, fd, run_command, {"mysql": mysql, "pg_restore": pg_restore})
            except RestoreFailed as exc:
                raise RestoreFailed("The restore of %s into %s failed half-way: %s. %s%s. The dump is untouched. %s"
                                    % (path, url.database, exc, LEFT[backend], _now(engine), NEXT_TRY))
            after = backup.describe(engine)
        seconds = round(time.monotonic() - started, 3)
    finally:
        os.close(fd)
    _check_restored(after, dump, url.database)
    return _result(True, "Restored the dump %s (taken %s) into %s in %.1f s: %s (was: %s)." % (
        path, record.get("taken_at"), url.database, seconds, _summary(after),
        _summary(before) if _holds(before) else "empty"), dump, before, after, seconds)


def _refuse_unless_forced(before, force, database, dump):
    if _holds(before) and not force:
        raise RestoreRefused(
            "The database %s holds tables (%s): restoring %s would replace all of them with the dump's (%s), "
            "losing every write since the dump. Nothing was changed. Stop the Glance API, then run again with "
            "force: true." % (database, _summary(before), dump["path"], _summary(dump)))


def _now(engine):
    """What the database holds after a failure, for the message (nothing when it cannot be read)."""
    try:
        return " (now: %s)" % _summary(backup.describe(engine))
    except Exception:  # pylint: disable=broad-except  # the failure itself is what the message reports
        return ""


def _check_restored(after, dump, database):
    """The restored database is at the dump's revisions and has its tables."""
    missing = sorted(set(dump.get("rows") or {}) - set(after["rows"]))
    if (dump.get("revisions") is not None and after["revisions"] != dump["revisions"]) or missing:
        raise RestoreFailed(
            "The restore of %s into %s completed, but the database is not what the dump's record says: %s, "
            "recorded %s. %s" % (dump["path"], database, _summary(after), _summary(dump), NEXT_TRY))


def _result(changed, msg, dump, before, after, seconds):
    result = dict(changed=changed, msg=msg, dump=dump, before=before, after=after)
    if seconds is not None:
        result["seconds"] = seconds
    return result


def diff_text(held):
    """The diff's text of what a database holds: its revisions, then one line per table."""
    lines = ["revisions: %s" % (", ".join(held.get("revisions") or []) or "none")]
    lines += ["%s: %d rows" % (table, count) for table, count in sorted((held.get("rows") or {}).items())]
    return "\n".join(lines) + "\n"
