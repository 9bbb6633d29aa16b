# -*- coding: utf-8 -*-
"""Keep the application running while MySQL/MariaDB changes the schema, and
finish revisions a killed run left half-done.

Every ALTER TABLE, CREATE INDEX and DROP INDEX asks for LOCK=NONE, so writes go on
while it runs (the server picks INSTANT or INPLACE); where the server cannot honour
it, the statement runs without and a warning says so. A statement waits for a
metadata lock at most lock_wait_timeout seconds (so it cannot queue application
queries behind it for long), and is retried with backoff.

With the server's data directory at hand (the module runs on the database
server), each ALTER TABLE runs while a second hard link holds the table's
tablespace file: see TablespaceHold.
"""

from __future__ import annotations

import contextlib
import os
import re
import time

from .deps import sa
from .errors import ConfigurationError
from .retry import DEADLOCK, LOCK_WAIT_TIMEOUT, error_code, with_backoff
from .table_copy import CopyRefused, TableCopy, alteration, refuse_without_room

LOCK_NOT_SUPPORTED = (1845, 1846)  # ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON)
# What a statement reports when a killed run already did it: MySQL commits each DDL
# statement on its own, so a revision can stop between two of them. Only
# revisions that alembic_version says are not applied run, so these mean "done".
ALREADY_DONE = {
    1050: "table exists",
    1051: "table already dropped",
    1060: "column exists",
    1061: "index exists",
    1091: "column or index already dropped",
    1359: "trigger exists",
}
HOLD_PREFIX = "#glance_db_hold."  # no .ibd suffix: the server never takes it for a table
ALTER_TABLE = re.compile(r"\s*ALTER\s+TABLE\s+`?(\w+)`?", re.IGNORECASE)


def _online_form(sql):
    """The statement with LOCK=NONE, or None when the statement takes no such clause."""
    sql = sql.strip().rstrip(";")
    head = sql.upper()
    if head.startswith("ALTER TABLE"):
        return sql + ", LOCK=NONE"
    if head.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX")):
        return sql + " LOCK=NONE"
    drop_index = re.match(r"DROP INDEX (\S+) ON (\S+)$", sql, re.IGNORECASE)
    if drop_index:  # MariaDB's DROP INDEX takes no LOCK clause; ALTER TABLE does
        return "ALTER TABLE %s DROP INDEX %s, LOCK=NONE" % (drop_index.group(2), drop_index.group(1))
    return None


class TablespaceHold(object):
    """A second hard link to a table's .ibd file while an ALTER TABLE runs on it.

    An ALTER that rebuilds a table ends under an exclusive metadata lock, which
    queues every write to the table, and the server deleting the old copy's file
    takes about 130 ms of it on a million images. With a second link the
    server's delete only removes a name; this class frees the blocks afterwards,
    when no lock is held. It needs the server's data directory on this host, with
    write access: the module runs on the database server.
    """

    def __init__(self, datadir, database):
        self.datadir = datadir
        self.database = database

    @classmethod
    def for_server(cls, datadir, url):
        """Check the option against the database; raise ConfigurationError if unusable."""
        if url.get_backend_name() != "mysql":
            raise ConfigurationError(
                "mysql_datadir applies to MySQL/MariaDB only; remove it for %s."
                % url.get_backend_name())
        schema_dir = os.path.join(datadir, url.database or "")
        if not url.database or not os.path.isdir(schema_dir):
            raise ConfigurationError(
                "mysql_datadir %s does not hold the files of database %s (no directory %s): give "
                "the server's data directory (SELECT @@datadir) as this host sees it, run the task "
                "on the database server, or leave mysql_datadir unset."
                % (datadir, url.database, schema_dir))
        if not os.access(datadir, os.W_OK | os.X_OK):
            raise ConfigurationError(
                "mysql_datadir %s is not writable by this user: run the task as the server's "
                "user (become_user: mysql) or root, or leave mysql_datadir unset." % datadir)
        return cls(datadir, url.database)

    def refuse_without_room(self, copy):
        """Refuse a run whose largest expected shadow copy (phases.estimate_copies) does not fit."""
        refuse_without_room(copy["table"], copy["estimated_bytes"], self.datadir)

    def clear_leftovers(self):
        """Free what a killed run's holds still keep (the caller holds the migration lock)."""
        for name in os.listdir(self.datadir):
            path = os.path.join(self.datadir, name)
            if name.startswith(HOLD_PREFIX + self.database + ".") and os.path.isfile(path):
                os.unlink(path)

    @contextlib.contextmanager
    def holding(self, table, warn):
        tablespace = os.path.join(self.datadir, self.database, table + ".ibd")
        hold = os.path.join(self.datadir, "%s%s.%s" % (HOLD_PREFIX, self.database, table))
        try:
            os.link(tablespace, hold)
        except FileNotFoundError:  # not file-per-table: nothing to hold
            hold = None
        except OSError as exc:  # e.g. the database directory on another file system
            warn("Could not hold the file of table %s during its ALTER TABLE (%s); it ran "
                 "without, so the server deleted the old copy while writes waited."
                 % (table, exc.strerror or exc))
            hold = None
        try:
            yield
        finally:
            if hold:
                os.unlink(hold)


class OnlineDDL(object):
    """Wraps an Alembic MigrationContext's statement execution (MySQL only)."""

    def __init__(self, warn, sleep=time.sleep, hold=None, copy=False, galera=False, progress=None):
        self.warn = warn
        self.sleep = sleep
        self.hold = hold  # a TablespaceHold, or None
        self.resumed = []  # statements found already done by an interrupted run
        # Online: a large table's rebuild or index build through a shadow copy (table_copy.py).
        self.copy = TableCopy(self._ddl, galera=galera, sleep=sleep, warn=warn,
                              datadir=hold.datadir if hold else None, progress=progress) if copy else None
        self._queued = None  # (connection, table, [(ALTER clause, rebuilds, plain run)])

    def _ddl(self, connection, sql):
        return self._with_retry(lambda: connection.exec_driver_sql(sql))

    def clear_copy_leftovers(self, connection):
        """Clear what any stopped shadow copy left; an offline run, which copies nothing, too."""
        (self.copy or TableCopy(self._ddl)).clear_all_leftovers(connection)

    def install(self, context):
        impl = context.impl
        original = impl._exec

        def execute(construct, *args, **kwargs):
            if isinstance(construct, str):
                construct = sa.text(construct)
            ddl = isinstance(construct, sa.schema.ExecutableDDLElement)
            sql = str(construct.compile(dialect=context.dialect)) if ddl else None

            def plain():
                if not ddl or _online_form(sql) is None:
                    return self._run(construct, lambda: self._with_retry(
                        lambda: original(construct, *args, **kwargs)))
                return self._plain_online(impl.connection, construct, sql)

            change = ddl and self.copy and alteration(sql)
            if change and self._queue(impl.connection, change, plain):
                return None
            self.flush()  # what is queued runs before any other statement
            return plain()

        impl._exec = execute

    def _plain_online(self, connection, construct, sql):
        """A DDL statement the plain way: LOCK=NONE, its table's file held with mysql_datadir."""
        online = _online_form(sql)
        altered = ALTER_TABLE.match(online)
        hold = self.hold.holding(altered.group(1), self.warn) if self.hold and altered else contextlib.nullcontext()
        with hold:
            return self._run(construct, lambda: self._online(connection, online, sql))

    def _queue(self, connection, change, plain):
        """Queue a change of a large table; True when queued. The changes of one table that
        follow one another wait together: if one of them needs a shadow copy (a rebuild, an
        index build), they all go into one copy (one pass over the rows, one swap, and no
        statement of theirs holds the table); else each runs the plain way (``plain``)."""
        table, clause, rebuilds = change
        if not (self._queued and self._queued[1] == table):
            if not self.copy.wanted(connection, table):
                return False
            self.flush()
            self._queued = (connection, table, [])
        self._queued[2].append((clause, rebuilds, plain))
        return True

    def flush(self):
        """Run what is queued: before the next statement, and at the end of a revision."""
        queued, self._queued = self._queued, None
        if not queued:
            return
        connection, table, changes = queued
        if any(rebuilds for _clause, rebuilds, _plain in changes):
            try:
                self.copy.rebuild(connection, table, ", ".join(clause for clause, _rebuilds, _plain in changes))
                return
            except CopyRefused as exc:
                self.warn("Table %s was changed by ALTER TABLE, which holds its writers while it runs, not "
                          "through a shadow copy: the copy's triggers were refused (%s). Grant the user TRIGGER "
                          "and, with binary logging, SUPER or log_bin_trust_function_creators=1, so that the "
                          "next large change copies."
                          % (table, exc))
        for _clause, _rebuilds, plain in changes:
            plain()

    def discard(self):
        """Forget a queued copy (its revision failed before the end)."""
        self._queued = None

    def _online(self, connection, online, sql):
        """The statement with LOCK=NONE; without it (and a warning) where MySQL refuses."""
        try:
            return self._with_retry(lambda: connection.exec_driver_sql(online))
        except sa.exc.OperationalError as exc:
            if error_code(exc) not in LOCK_NOT_SUPPORTED:
                raise
            self.warn("MySQL cannot run this change without blocking writes; it runs "
                      "with the table locked: %s" % sql.strip().splitlines()[0])
            return self._with_retry(lambda: connection.exec_driver_sql(sql))

    def _run(self, construct, statement):
        """Run; an error saying an interrupted run did it already counts as done."""
        try:
            return statement()
        except sa.exc.DBAPIError as exc:
            if error_code(exc) not in ALREADY_DONE:
                raise
            self.resumed.append("%s (%s)" % (
                str(construct).strip().splitlines()[0], ALREADY_DONE[error_code(exc)]))
            return None

    def _with_retry(self, statement):
        return with_backoff(statement, (LOCK_WAIT_TIMEOUT, DEADLOCK), self.sleep)
