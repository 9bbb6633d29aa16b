# -*- coding: utf-8 -*-
"""The hook on Alembic through which every statement of a revision passes on MySQL/MariaDB.

OnlineDDL.install wraps the MigrationContext's ``impl._exec``, where Alembic
executes each operation. Each statement there takes its route (__init__.py):

- in an online run, a change of a table a copy takes (takes_copy) waits for the
  changes of that table that follow it; if one of them rebuilds the table or
  builds an index, they all go through one shadow copy (copier.py) and none of
  them runs itself; otherwise each runs as below;
- any other ALTER TABLE, CREATE INDEX and DROP INDEX asks for LOCK=NONE
  (statements.lock_none_form), so writes go on while it runs (the server picks
  INSTANT or INPLACE); where the server cannot honour it, the statement runs
  without and a warning says so; with mysql_datadir, an ALTER TABLE runs while
  its table's file is held (tablespace_hold.py);
- every statement waits for a metadata lock at most lock_wait_timeout seconds (so
  it cannot queue application queries behind it for long), and is retried with
  backoff; an error saying a killed run already did it counts as done, which
  finishes a revision that run left half-done.

Why Alembic's private ``_exec`` and not a public SQLAlchemy event: the hook must
not run a statement at all (a copy instead), run it again (after a lock wait, a
deadlock, or without LOCK=NONE where the server refuses it), or take an error as
done. An event sees a statement once and cannot replace its execution.
tests/unit/plugins/module_utils/glance_db/online/test_alembic_hook.py fails at once if Alembic renames ``_exec``
or routes an operation the revisions use around it.
"""

from __future__ import annotations

import contextlib
import time

from ..deps import sa
from ..db_errors import DDL, code_of, with_backoff
from ..progress import Progress
from . import SHADOW_COPY, route
from .copier import CopyRefused, TableCopy
from .statements import alteration, altered_table, lock_none_form

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


class OnlineDDL(object):
    """Wraps an Alembic MigrationContext's statement execution (MySQL only)."""

    def __init__(self, warn, options=None, profile=None, sleep=time.sleep, hold=None, copy=False, carried=None,
                 progress=None):
        self.warn = warn
        self.sleep = sleep
        self.hold = hold  # a TablespaceHold, or None
        self.resumed = []  # statements found already done by an interrupted run
        self.carried = carried  # Glance's triggers a copy carries across its swap (cut_over.py)
        self.progress = progress or Progress()  # says when a statement waits for a lock (progress.py)
        # Online: a large table's rebuild or index build through a shadow copy (copier.py).
        self.copy = TableCopy(self._ddl, options, profile, sleep=sleep, warn=warn,
                              datadir=hold.datadir if hold else None, carried=carried,
                              progress=self.progress) if copy else None
        self._queued = None  # (connection, table, [(ALTER clause, rebuilds, plain run)])

    def _ddl(self, connection, sql):
        return self._with_retry(lambda: connection.exec_driver_sql(sql), sql)

    def clear_copy_leftovers(self, connection):
        """Clear what any stopped shadow copy left; an offline run, which copies nothing, too."""
        (self.copy or TableCopy(self._ddl, carried=self.carried)).clear_all_leftovers(connection)

    def install(self, context):
        """Wrap ``context``'s statement execution (see the module's doc)."""
        impl = context.impl
        original = impl._exec

        def execute(construct, *args, **kwargs):
            if isinstance(construct, str):
                construct = sa.text(construct)
            ddl = isinstance(construct, sa.schema.ExecutableDDLElement)
            sql = str(construct.compile(dialect=context.dialect)) if ddl else None

            def plain():
                if not ddl or lock_none_form(sql) is None:
                    return self._run(construct, lambda: self._with_retry(
                        lambda: original(construct, *args, **kwargs), sql))
                return self._plain_online(impl.connection, construct, sql)

            change = ddl and self.copy and alteration(sql)
            if change and self._queue(impl.connection, change, plain):
                return None
            self.flush()  # what is queued runs before any other statement
            return plain()

        impl._exec = execute

    def _plain_online(self, connection, construct, sql):
        """A DDL statement the plain way: LOCK=NONE, its table's file held with mysql_datadir."""
        online = lock_none_form(sql)
        altered = altered_table(online)
        hold = self.hold.holding(altered, self.warn) if self.hold and altered else contextlib.nullcontext()
        with hold:
            return self._run(construct, lambda: self._online(connection, online, sql))

    def _queue(self, connection, change, plain):
        """Queue a change of a table a copy takes; True when queued. The changes of one table
        that follow one another wait together for their route (flush)."""
        table, clause, rebuilds = change
        if not (self._queued and self._queued[1] == table):
            if not self.copy.wanted(connection, table):
                return False
            self.flush()
            self._queued = (connection, table, [])
        self._queued[2].append((clause, rebuilds, plain))
        return True

    def flush(self):
        """Run what is queued, by its route: all of it through one shadow copy (one pass over
        the rows, one swap, no statement of theirs holding the table), or each statement the
        plain way. Called before the next statement, and at the end of a revision."""
        queued, self._queued = self._queued, None
        if not queued:
            return
        connection, table, changes = queued
        # Only a table a copy takes is queued; the others ran the plain way at once.
        if route([rebuilds for _clause, rebuilds, _plain in changes], copyable=True) == SHADOW_COPY:
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
            return self._with_retry(lambda: connection.exec_driver_sql(online), sql)
        except sa.exc.OperationalError as exc:
            if code_of(exc) not in LOCK_NOT_SUPPORTED:
                raise
            self.warn("MySQL cannot run this change without blocking writes; it runs "
                      "with the table locked: %s" % sql.strip().splitlines()[0])
            return self._with_retry(lambda: connection.exec_driver_sql(sql), sql)

    def _run(self, construct, statement):
        """Run; an error saying an interrupted run did it already counts as done."""
        try:
            return statement()
        except sa.exc.DBAPIError as exc:
            if code_of(exc) not in ALREADY_DONE:
                raise
            self.resumed.append("%s (%s)" % (
                str(construct).strip().splitlines()[0], ALREADY_DONE[code_of(exc)]))
            return None

    def _with_retry(self, statement, sql=None):
        """``statement()``, tried again after a lock wait (metadata or InnoDB) or a deadlock; the
        progress names it meanwhile by ``sql``'s first words (``ALTER TABLE images``)."""
        what = " ".join(sql.split()[:3]) if sql else "a schema change"
        with self.progress.lock_waits(what) as on_retry:
            return with_backoff(statement, DDL, self.sleep, on_retry=on_retry)
