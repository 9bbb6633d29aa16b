# -*- coding: utf-8 -*-
"""Keep the application running while MySQL/MariaDB changes the schema, and
finish revisions a killed run left half-done.

Every ALTER TABLE, CREATE INDEX and DROP INDEX asks for LOCK=NONE, so writes go on
while it runs (the server picks INSTANT or INPLACE); where the server cannot honour
it, the statement runs without and a warning says so. A statement waits for a
metadata lock at most lock_wait_timeout seconds (so it cannot queue application
queries behind it for long), and is retried with backoff.
"""

from __future__ import annotations

import re
import time

from .deps import sa

LOCK_WAIT_TIMEOUT = 1205  # ER_LOCK_WAIT_TIMEOUT: gave up waiting for a metadata lock
DEADLOCK = 1213
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
RETRIES = 6
FIRST_BACKOFF_SECONDS = 0.5


def _error_code(exc):
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", None)
    return args[0] if args else None


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


class OnlineDDL(object):
    """Wraps an Alembic MigrationContext's statement execution (MySQL only)."""

    def __init__(self, warn, sleep=time.sleep):
        self.warn = warn
        self.sleep = sleep
        self.retries = 0
        self.resumed = []  # statements found already done by an interrupted run

    def install(self, context):
        impl = context.impl
        original = impl._exec

        def execute(construct, *args, **kwargs):
            if isinstance(construct, str):
                construct = sa.text(construct)
            online = None
            if isinstance(construct, sa.schema.ExecutableDDLElement):
                sql = str(construct.compile(dialect=context.dialect))
                online = _online_form(sql)
            try:
                if online is None:
                    return self._with_retry(lambda: original(construct, *args, **kwargs))
                try:
                    return self._with_retry(lambda: impl.connection.exec_driver_sql(online))
                except sa.exc.OperationalError as exc:
                    if _error_code(exc) not in LOCK_NOT_SUPPORTED:
                        raise
                    self.warn("MySQL cannot run this change without blocking writes; it runs "
                              "with the table locked: %s" % sql.strip().splitlines()[0])
                    return self._with_retry(lambda: impl.connection.exec_driver_sql(sql))
            except sa.exc.DBAPIError as exc:
                if _error_code(exc) not in ALREADY_DONE:
                    raise
                self.resumed.append("%s (%s)" % (
                    str(construct).strip().splitlines()[0], ALREADY_DONE[_error_code(exc)]))
                return None

        impl._exec = execute

    def _with_retry(self, statement):
        delay = FIRST_BACKOFF_SECONDS
        for attempt in range(RETRIES + 1):
            try:
                return statement()
            except sa.exc.OperationalError as exc:
                if _error_code(exc) not in (LOCK_WAIT_TIMEOUT, DEADLOCK) or attempt == RETRIES:
                    raise
                self.retries += 1
                self.sleep(delay)
                delay *= 2
