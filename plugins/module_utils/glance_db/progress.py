# -*- coding: utf-8 -*-
"""What a long run is doing, published where another process can read it.

A writing run (a phase, purge, metadefs) reports its steps here: the phase, the
step (``copy 2 of 3: images for ocata_expand01``, a revision, a data migration),
rows done and rows total, the rate and, once a few percent are done, the ETA;
whether it is throttled, and who runs it (host, pid, the migration lock's holder).
A ``Progress`` without a store keeps the record in memory only, and is what every
caller gets by default.

Where the record lives (docs/progress.md): on MySQL/MariaDB, Galera or not, one row
per Glance database in ``<galera_lock_database>.progress``, beside the lease, outside
Glance's database (its schema stays Glance's); on SQLite, a JSON file beside the
database. PostgreSQL publishes nothing: its online phases are refused, and a table
there would need a schema Glance's user may not create.

Publishing never joins a migration transaction (its own autocommit connection, or a
file), is throttled to one write per PUBLISH_SECONDS, and never fails the run: the
first failure is one warning, then the run goes on unpublished.

The facts (state.py) read the record back and judge it with the migration lock: a
record whose run no longer holds the lock is stale.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import time

from .leftovers import rows_in_lock_database

PUBLISH_SECONDS = 0.5
# The share of a step done before its ETA is given: the first batches are no guide.
ETA_AFTER = 0.03
TABLE = "progress"
SQLITE_SUFFIX = ".progress"
# What a step's record holds (the run's own keys beside them: phase, host, pid, holder, ...).
STEP_KEYS = ("phase", "step", "name", "index", "count", "table", "revision", "stage", "rows_done", "rows_total",
             "percent", "rows_per_second", "eta_seconds", "throttled", "step_started_at")
STALE = " (stale: its process no longer holds the migration lock)"
KEEP_FINISHED = 10  # the steps that moved rows, kept in the record once over (newest last)
LOCK_WAIT = "lock wait: retrying %s after error %s (try %d of %d)"


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Progress(object):
    """The progress of one run; ``store`` (MysqlStore, FileStore) publishes it, or None."""

    def __init__(self, store=None, clock=time.monotonic):
        self.store = store
        self.warnings = []  # at most one: why the progress could not be published
        self.clock = clock
        self.record = None
        self.copies_planned = 0
        self.copies_started = 0
        self._revisions = []
        self._migrations = []  # the names of the data migrations to run, in order
        self._rebuilds = []  # (revision, table) of each revision to apply that rebuilds a table
        self._large = set()  # the tables large enough for a shadow copy
        self._step_started = None
        self._published = None

    # ---- what the run reports
    @contextlib.contextmanager
    def running(self, phase, holder=None):
        """Within the block the run holds the migration lock (``holder``: lock.migration_lock's)
        and runs ``phase``; after it, done or failed, nothing is published as running."""
        self.begin(phase, holder)
        try:
            yield self
        finally:
            self.end()

    def begin(self, phase, holder=None):
        """The run holds the migration lock (``holder`` names that hold) and starts ``phase``."""
        self.record = {"phase": phase, "host": socket.gethostname(), "pid": os.getpid(),
                       "holder": None if holder is None else str(holder), "started_at": _utc_now(),
                       "step": None}
        self._publish(force=True)

    def planned(self, revision_ids, table_copies, data_migrations=()):
        """The revisions this run is about to apply, in order, and the shadow copies the plan
        expects (phases.estimate_copies), so that steps read "k of n". The server's row
        estimates can be stale: once a table is copied, every revision of the run that
        rebuilds it counts as a copy too."""
        from .graph import GRAPH  # not at the top: the controller's glance_db_wait imports line()
        self._revisions = list(revision_ids)
        self._rebuilds = [(revision, table) for revision in self._revisions
                          for table in getattr(GRAPH.get(revision).script, "rebuilds", ())]
        self._large = set(copy["table"] for copy in table_copies)
        self._migrations = list(data_migrations)
        self._count_copies()

    def _count_copies(self):
        self.copies_planned = len([1 for _revision, table in self._rebuilds if table in self._large])

    def revision(self, revision_id):
        """Revision ``revision_id`` starts."""
        count = len(self._revisions)
        index = self._revisions.index(revision_id) + 1 if revision_id in self._revisions else None
        self.step("revision", revision_id, index, count or None, revision=revision_id)

    def copy(self, table, rows_total):
        """A shadow copy of ``table`` starts, of about ``rows_total`` rows (table_copy.py)."""
        self.copies_started += 1
        if table not in self._large:
            self._large.add(table)
            self._count_copies()
        revision = (self.record or {}).get("revision")
        name = "%s for %s" % (table, revision) if revision else table
        self.step("copy", name, self.copies_started, max(self.copies_planned, self.copies_started),
                  table=table, rows_total=rows_total, revision=revision, stage="copying rows")

    def step(self, kind, name, index=None, count=None, table=None, rows_total=None, revision=None, stage=None):
        """A step starts: ``kind`` (revision, copy, migrate, purge, metadefs) and its ``name``,
        ``index`` of ``count`` where known, ``rows_total`` where it moves rows."""
        if self.record is None:
            return
        if kind == "data migration" and name in self._migrations and index is None:
            index, count = self._migrations.index(name) + 1, len(self._migrations)
        self._finish_step()
        self._step_started = self.clock()
        self.record.update(step=kind, name=name, index=index, count=count, table=table, stage=stage,
                           revision=revision if revision is not None else self.record.get("revision"),
                           rows_done=0 if rows_total is not None else None, rows_total=rows_total,
                           rows_per_second=None, eta_seconds=None, percent=None, throttled=None,
                           step_started_at=_utc_now())
        self._publish(force=True)

    def _finish_step(self):
        """Keep the step that ends, when it moved rows, with the seconds it took: a reader that
        polls now and then still sees each copy reach its total (and the benchmark, how long
        it really took)."""
        if self.record.get("rows_done") is None:
            return
        done = dict((key, self.record.get(key)) for key in STEP_KEYS)
        done.update(stage=None, eta_seconds=None, throttled=None,
                    seconds=round(self.clock() - self._step_started, 2))
        self.record["finished"] = (self.record.get("finished") or [])[-(KEEP_FINISHED - 1):] + [done]

    def stage(self, stage):
        """Within a copy: ``copying rows``, ``pointing foreign keys at the copy``, ``swapping``.
        What held the stage before (flow control, a lock wait) says nothing of this one."""
        if self.record is None:
            return
        self.record.update(stage=stage, rows_per_second=None, eta_seconds=None, throttled=None)
        self._publish(force=True)

    def rows(self, done, total=None):
        """``done`` rows of the step (of ``total``, when it changed); published at most once per
        PUBLISH_SECONDS."""
        if self.record is None:
            return
        if total is not None:
            self.record["rows_total"] = total
        total = self.record.get("rows_total")
        self.record["rows_done"] = done
        elapsed = self.clock() - self._step_started
        rate = done / elapsed if elapsed > 0 else None
        self.record["rows_per_second"] = round(rate, 1) if rate else None
        if total:
            share = min(1.0, float(done) / total)
            self.record["percent"] = round(100.0 * share, 1)
            self.record["eta_seconds"] = (int(round((total - done) / rate))
                                          if rate and share >= ETA_AFTER and done < total else None)
        self._publish(force=bool(total) and done >= total)

    def throttled(self, why):
        """``why`` the run waits (flow control, a lock wait), or None once it goes on."""
        if self.record is None or self.record.get("throttled") == why:
            return
        self.record["throttled"] = why
        self._publish(force=True)

    @contextlib.contextmanager
    def lock_waits(self, what):
        """Around db_errors.with_backoff: yields its ``on_retry``, which says the run is throttled
        while ``what`` (a copy batch, a schema change) is tried again after a lock wait or a
        deadlock; once it went through, the run says so no longer."""
        said = []

        def on_retry(exc, attempt, tries):
            from .db_errors import code_of  # not at the top: the controller's glance_db_wait imports line()
            said.append(LOCK_WAIT % (what, code_of(exc), attempt, tries))
            self.throttled(said[-1])
        yield on_retry
        if said and self.record is not None and self.record.get("throttled") == said[-1]:
            self.throttled(None)
            self._published = None  # and the rows the caller reports next: the wait may have been long

    @property
    def publishes(self):
        """Whether anyone can read this run's steps: what only they need (a count) is skipped otherwise."""
        return self.store is not None and self.record is not None

    def end(self):
        """The run is over (done or failed): nothing runs any more, so nothing is published."""
        if self.record is None:
            return
        self.record = None
        if self.store is not None:
            try:
                self.store.clear()
            except Exception as exc:  # pylint: disable=broad-except  # never fails the run
                self._failed(exc)
            self._close()

    # ---- publishing
    def _publish(self, force=False):
        if self.store is None:
            return
        now = self.clock()
        if not force and self._published is not None and now - self._published < PUBLISH_SECONDS:
            return
        self._published = now
        self.record["updated_at"] = _utc_now()
        try:
            self.store.write(self.record)
        except Exception as exc:  # pylint: disable=broad-except  # never fails the run
            self._failed(exc)

    def _failed(self, exc):
        where = self.store.where if self.store is not None else "its store"
        first = (str(getattr(exc, "orig", exc)).strip().splitlines() or [type(exc).__name__])[0]
        self.warnings.append(
            "The progress of this run could not be published in %s (%s), so glance_db_facts and glance_db_wait "
            "do not show it; the run went on. %s" % (where, first, getattr(self.store, "fix", "")))
        self._close()

    def _close(self):
        store, self.store = self.store, None
        if store is not None:
            try:
                store.close()
            except Exception:  # pylint: disable=broad-except  # nothing left to publish
                pass


# ---- stores
class MysqlStore(object):
    """One row per Glance database in ``<lock_database>.progress``, written through a DB-API
    connection of its own, each statement committed at once: never the migration's
    transaction, and none of the statement events the migration's engine listens to."""

    def __init__(self, url, lock_database, timeout=10):
        from . import connection as db_connection  # the connection's users import progress
        self.database = url.database
        self.lock_database = lock_database
        self.table = "`%s`.`%s`" % (lock_database.replace("`", "``"), TABLE)
        self.where = "%s.%s" % (lock_database, TABLE)
        self.fix = ("Grant the Glance user SELECT, INSERT, UPDATE, DELETE and CREATE on %s.* (as the "
                    "Galera lease needs, docs/database-grants.md) to have it published." % lock_database)
        self.engine = db_connection.create_engine(url, read_timeout=timeout)
        self.conn = None

    def _execute(self, sql, params=()):
        if self.conn is None:
            self.conn = self.engine.raw_connection()
            self._ensure_table()
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        finally:
            cursor.close()
        self.conn.commit()
        return rows

    def _ensure_table(self):
        if self._execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                         "TABLE_NAME = %s", (self.lock_database, TABLE))[0][0]:
            return
        self._execute("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4"
                      % self.lock_database.replace("`", "``"))
        self._execute(
            "CREATE TABLE IF NOT EXISTS %s (name VARCHAR(64) NOT NULL PRIMARY KEY, holder VARCHAR(64) NULL, "
            "record TEXT NOT NULL, updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB" % self.table)

    def write(self, record):
        self._execute("REPLACE INTO %s (name, holder, record, updated_at) VALUES (%%s, %%s, %%s, UTC_TIMESTAMP(6))"
                      % self.table, (self.database, record.get("holder"), json.dumps(record, sort_keys=True)))

    def clear(self):
        self._execute("DELETE FROM %s WHERE name = %%s" % self.table, (self.database,))

    def close(self):
        try:
            if self.conn is not None:
                self.conn.close()
        finally:
            self.engine.dispose()


class FileStore(object):
    """SQLite: ``<database>.progress`` beside the database file, replaced whole at each write."""

    fix = "Let the run's user write the database file's directory to have it published."

    def __init__(self, database):
        self.path = file_of(database)
        self.where = self.path

    def write(self, record):
        partial = self.path + ".partial"
        with open(partial, "w") as out:
            json.dump(record, out, sort_keys=True)
        os.replace(partial, self.path)

    def clear(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def close(self):
        pass


def file_of(database):
    return os.path.abspath(database) + SQLITE_SUFFIX


def for_server(engine, profile, options):
    """The Progress of a run on ``engine``'s server (profile.ServerProfile), published where
    docs/progress.md says; PostgreSQL's is not published."""
    url = engine.url
    store = None
    if profile.engine_name == "mysql":
        store = MysqlStore(url, options.galera_lock_database)
    elif profile.engine_name == "sqlite" and url.database and url.database != ":memory:" \
            and not url.database.startswith("file:"):
        store = FileStore(url.database)
    return Progress(store)


# ---- reading it back (the facts)
def read_mysql(rows, lock_database, galera=False, lease=None):
    """The running step of this database's run on MySQL/MariaDB, or None: its record in
    ``<lock_database>.progress``, with ``state`` V(running) while its run holds the migration
    lock (on Galera the ``lease`` read by leftovers.read_lease; elsewhere GET_LOCK's holder),
    else V(stale)."""
    found = rows_in_lock_database(rows, lock_database, TABLE, "holder, record, updated_at")
    if not found:
        return None
    holder, text, updated = found[0]
    record = _parsed(text)
    if record is None:
        return None
    if galera:
        held = bool(lease) and not lease["stale"] and lease["holder"] == holder
    else:
        from .lock import LOCK_NAME
        owner = rows("SELECT IS_USED_LOCK(CONCAT('%s.', DATABASE()))" % LOCK_NAME)[0][0]
        held = owner is not None and str(owner) == str(holder)
    record["updated_at"] = "%sZ" % updated.isoformat() if hasattr(updated, "isoformat") else record.get("updated_at")
    return _judged(record, held)


def read_sqlite(database):
    """The running step of the run on SQLite ``database``, or None; stale when no process holds
    the migration lock's file (lock.py) any more."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    try:
        with open(file_of(database)) as found:
            record = _parsed(found.read())
    except (OSError, ValueError):
        return None
    if record is None:
        return None
    return _judged(record, _file_locked(os.path.abspath(database) + ".migration-lock"))


def _file_locked(path):
    """Whether a process holds the flock of ``path`` (read only: a shared lock tried, never waited for)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)  # and with it the shared lock, if taken
    return False


def _parsed(text):
    try:
        record = json.loads(text)
    except (TypeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _judged(record, held):
    record["state"] = "running" if held else "stale"
    record["line"] = line(record)
    return record


# ---- one line for an operator
def _count(number):
    return "{:,}".format(int(number))


def duration(seconds):
    """``4 min 40 s``, ``1 h 2 min``, ``12 s``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min %d s" % (seconds // 60, seconds % 60)
    return "%d h %d min" % (seconds // 3600, seconds % 3600 // 60)


def line(record):
    """``expand: copy 2 of 3, images: 412,000/1,000,000 (41 %), 2,100 rows/s, ETA 4 min 40 s``."""
    if not record.get("step"):
        text = "%s: starting" % record.get("phase")
    else:
        step = record["step"]
        if record.get("index") and record.get("count"):
            step = "%s %d of %d" % (step, record["index"], record["count"])
        what = record.get("table") if record["step"] == "copy" else record.get("name")
        text = "%s: %s" % (record.get("phase"), step)
        if what:
            text += ", %s" % what
        if record.get("rows_done") is not None:
            text += ": %s" % _count(record["rows_done"])
            if record.get("rows_total"):
                text += "/%s (%d %%)" % (_count(record["rows_total"]), int(record.get("percent") or 0))
        if record.get("seconds") is not None:  # a finished step
            text += ", done in %s" % duration(record["seconds"])
        elif record.get("stage") and record["stage"] != "copying rows":  # the copy's last, short steps
            text += ", %s" % record["stage"] if record.get("rows_done") is not None else ": %s" % record["stage"]
        elif record.get("rows_done") is not None and record.get("state") != "stale":  # a stopped run has no rate
            if record.get("rows_per_second"):
                text += ", %s rows/s" % _count(record["rows_per_second"])
            if record.get("eta_seconds") is not None:
                text += ", ETA %s" % duration(record["eta_seconds"])
    if record.get("throttled"):
        text += ", throttled: %s" % record["throttled"]
    if record.get("state") == "stale":
        text += STALE
    return text
