# -*- coding: utf-8 -*-
"""Rebuild a large MySQL/MariaDB table without holding its writers: a shadow-table copy.

An ALTER TABLE that rebuilds a table (MODIFY, CHANGE) or builds an index holds
the application's writes: on one server at its end (an exclusive metadata lock,
then the old file's delete), on Galera for its whole run (Total Order Isolation:
every node's writers wait). On a table a copy takes (the route, in __init__.py)
an online expand or contract takes this route instead (the pt-online-schema-change
one):

1. ``_glance_new_<table>`` is created as the table is (inspector.create_copy: what
   LIKE makes, without LIKE's lock on the table) and the ALTER runs on it, empty,
   so at once;
2. three AFTER triggers on the table repeat each insert, update and delete on it;
3. the rows are copied in primary-key batches, each its own short transaction
   with its source rows share-locked (a write to them waits for the batch, or
   the batch sees it); on Galera, batches are smaller (flow_control.batch_rows), and
   one that lost certification to a write through another node runs again;
4. to 6. the cut-over (cut_over.py): the child tables' foreign keys are pointed at
   the copy, one ``RENAME TABLE`` swaps the names, the old copy is dropped with
   the triggers, and the table's own triggers (Glance's, passed in as ``carried``)
   are carried across.

What is left is what the ALTER alone gives: the same columns, indexes and
constraint names, so parity holds. A run stopped part-way leaves a copy
behind: the next one removes it first (it holds the migration lock).
"""

from __future__ import annotations

import time

from .. import flow_control
from .. import leftovers, stopping
from ..isolation import batches_read_committed
from ..leftovers import NEW, TRIGGER
from ..options import RunOptions
from ..profile import ServerProfile
from ..progress import Progress
from ..db_errors import (BATCH, BATCH_ROW_LOCK_WAIT, NO_SUCH_TABLE, ROUTINE_NEEDS_SUPER, TABLE_ACCESS_DENIED,
                         code_of, with_backoff)
from . import BATCH_ROWS, MIN_ROWS, inspector, takes_copy
from .cut_over import CutOver
from .held_swap import SwapHold
from .inspector import refuse_without_room, space_text

EVENTS = ("insert", "update", "delete")
# CREATE TRIGGER refused: binary logging without SUPER or log_bin_trust_function_creators
# (1419), or no TRIGGER privilege (1142).
TRIGGERS_REFUSED = (ROUTINE_NEEDS_SUPER, TABLE_ACCESS_DENIED)


def batch_end(conn, table, key, where, params, size):
    """The key of the ``size``-th row of ``table`` matching ``where``, in key order; None when
    fewer rows match (the last batch)."""
    return inspector.scalar(conn, "SELECT `%s` FROM `%s` WHERE %s ORDER BY `%s` LIMIT 1 OFFSET %d"
                            % (key, table, where, key, size - 1), *params)


def copy_statement(table, new, columns, key, where, share_lock=True):
    """The INSERT ... SELECT of one batch: the rows of ``table`` matching ``where`` into ``new``.
    ``share_lock``: the source rows share-locked (the copy's batches: a write to them waits for
    the batch, or the batch sees it); without it, under READ COMMITTED, a consistent read that
    locks no row of ``table`` (estimates' sample, online/sample.py)."""
    names = ", ".join("`%s`" % c for c in columns)
    return ("INSERT INTO `{n}` ({c}) SELECT {c} FROM `{t}` WHERE {w}{lock} "
            "ON DUPLICATE KEY UPDATE `{n}`.`{k}` = `{n}`.`{k}`").format(
                n=new, c=names, t=table, w=where, k=key, lock=" LOCK IN SHARE MODE" if share_lock else "")


class CopyRefused(Exception):
    """The server would not let the copy keep itself in step; nothing of it is left."""


class TableCopy(object):
    """Runs ALTER TABLE statements on large tables through a shadow copy (see the module's doc)."""

    def __init__(self, run_ddl, options=None, profile=None, sleep=time.sleep, batch_rows=None, min_rows=MIN_ROWS,
                 warn=None, datadir=None, carried=None, progress=None):
        """``options``: the run's options.RunOptions; ``profile``: the server's profile.ServerProfile
        (by default a MySQL server that is no Galera node)."""
        self.run_ddl = run_ddl  # (connection, sql): a DDL statement with the usual retries
        self.options = options or RunOptions()
        self.progress = progress or Progress()  # progress.py: what the run publishes (by default nothing)
        profile = profile or ServerProfile("mysql")
        self.warn = warn or (lambda text: None)
        self.datadir = datadir  # the server's data directory on this host (mysql_datadir), or None
        self._sizes = {}  # table -> the largest (data, indexes) seen in this run
        self.galera = profile.on_galera
        self.sleep = sleep
        self.batch_rows = batch_rows or flow_control.batch_rows(BATCH_ROWS, self.galera)
        self.min_rows = min_rows
        self.carried = carried or {}  # Glance's triggers a swap carries across (cut_over.py)
        self.cut_over = CutOver(run_ddl, profile, sleep=sleep, carried=self.carried, progress=self.progress)
        # hold_swap: each swap waits for the operator (held_swap.py); its on_wait is the progress hook.
        self.swap_hold = SwapHold(self.options.hold_swap) if self.options.hold_swap else None
        self.copies = []  # {"table", "alter", "rows", "seconds", "batches"} per copy made

    def wanted(self, conn, table):
        """Whether this copy takes ``table`` (takes_copy, with its threshold and carried triggers)."""
        return takes_copy(conn, table, self.carried, self.min_rows)

    def rebuild(self, conn, table, clause):
        """ALTER TABLE ``table`` ``clause`` through a shadow copy."""
        started = time.monotonic()
        self.clear_leftovers(conn, table)
        needed = self._check_space(conn, table)
        new = NEW % table
        self.run_ddl(conn, inspector.create_copy(conn, table, new))
        try:
            before = inspector.definition(conn, new)
            self.run_ddl(conn, "ALTER TABLE `%s` %s" % (new, clause))
            if inspector.definition(conn, new) == before:  # e.g. a resumed run: the table has it already
                self.run_ddl(conn, "DROP TABLE `%s`" % new)
                return
            kept = set(inspector.columns(conn, table))
            columns = [c for c in inspector.columns(conn, new) if c in kept]
            key = inspector.primary_key(conn, table)[0]
            for event in EVENTS:
                try:
                    self.run_ddl(conn, self._trigger(event, table, new, columns, key))
                except Exception as exc:  # sa.exc.DBAPIError; its code tells a refusal
                    if code_of(exc) not in TRIGGERS_REFUSED:
                        raise
                    raise CopyRefused(str(getattr(exc, "orig", exc)))
            rows, batches = self._copy(conn, table, new, columns, key)
            held = self._hold_swap(conn, table)
            self.progress.stage("pointing foreign keys at the copy")  # progress hook
            self.cut_over.prepare(conn, table, new)
        except BaseException:
            self._clear_after_failure(conn, table)
            raise
        self.progress.stage("swapping")  # progress hook
        self.cut_over.swap(conn, table, new)
        self.copies.append({"table": table, "alter": clause, "rows": rows, "batches": batches,
                            "seconds": round(time.monotonic() - started, 2), "estimated_bytes": needed})
        if held is not None:
            self.copies[-1]["held_seconds"] = held

    def _hold_swap(self, conn, table):
        """With hold_swap, wait (the copy kept in step) until the operator releases the swap; return
        the seconds held, or None without it. Before the cut-over's first step: the children's foreign
        keys keep pointing at the table while held, and the stall follows the release at once."""
        if not self.swap_hold:
            return None
        self.progress.stage("waiting to swap")  # progress hook
        return self.swap_hold.wait(conn, table)

    def _check_space(self, conn, table):
        """The room the copy needs (inspector.room_needed); refused when the data directory
        is at hand and lacks it, else a warning says how much to have: the server does not
        report its free disk."""
        needed = inspector.room_needed(conn, table, self.datadir, self._sizes)
        if self.datadir:
            refuse_without_room(table, needed, self.datadir)
        else:
            self.warn("A shadow copy of table %s needs about %s free in the database server's data "
                      "directory; the server does not report its free space, so it was not checked. "
                      "Run on the database server with mysql_datadir to have it checked." % (table, space_text(needed)))
        return needed

    def _clear_after_failure(self, conn, table):
        """Clear a failed copy's leftovers where the connection still works. Where it does not
        (the node died or froze: the error being raised says so), the next run clears them
        (clear_all_leftovers): a clearing's own error must not hide the first one."""
        if conn.invalidated:
            return
        try:
            self.clear_leftovers(conn, table)
        except Exception:  # pylint: disable=broad-except
            pass

    def clear_all_leftovers(self, conn):
        """Clear what any stopped copy left, whichever table it was of: a run resumed
        later need not copy that table again (the caller holds the migration lock)."""
        found = leftovers.read(lambda sql: conn.exec_driver_sql(sql).fetchall())
        for table in sorted(set(leftovers.table_of(item["table"]) for item in found)):
            self.clear_leftovers(conn, table)

    def clear_leftovers(self, conn, table):
        """Remove what a stopped copy of ``table`` left: triggers, the copy (its children
        pointed back at the table first), or the old copy after a swap. Only what
        exists is dropped: on Galera every statement runs in isolation. The copy's
        triggers are confirmed gone before the copy they write to is dropped."""
        new = NEW % table
        self.cut_over.drop_triggers(conn, table, [TRIGGER % (event, table) for event in EVENTS])
        if inspector.exists(conn, new):
            self.cut_over.point_foreign_keys(conn, new, table)
            self.run_ddl(conn, "DROP TABLE `%s`" % new)
        self.cut_over.restore_foreign_keys(conn, table)
        self.cut_over.drop_old(conn, table)
        self.cut_over.restore_carried(conn, table)

    @staticmethod
    def _trigger(event, table, new, columns, key):
        names = ", ".join("`%s`" % c for c in columns)
        values = ", ".join("NEW.`%s`" % c for c in columns)
        # NEW: the table's row as it is, not the insert as the copy's stand-in left it.
        updates = ", ".join("`%s` = NEW.`%s`" % (c, c) for c in columns)
        upsert = "INSERT INTO `%s` (%s) VALUES (%s) ON DUPLICATE KEY UPDATE %s" % (new, names, values, updates)
        if event == "insert":
            body = upsert
        elif event == "delete":
            body = "DELETE FROM `%s` WHERE `%s` = OLD.`%s`" % (new, key, key)
        else:
            body = ("IF NOT (OLD.`{k}` <=> NEW.`{k}`) THEN DELETE FROM `{n}` WHERE `{k}` = OLD.`{k}`; "
                    "END IF; {u}").format(k=key, n=new, u=upsert)
        # A copy that is gone (a stopped run's, cleared but for a trigger the server kept)
        # must not fail the application's write; it is never swapped in, so nothing is
        # missed. Only that error: any other (a full disk) still fails the write, as the
        # table's own write would.
        return ("CREATE TRIGGER `%s` AFTER %s ON `%s` FOR EACH ROW BEGIN DECLARE CONTINUE HANDLER FOR %d "
                "BEGIN END; %s; END" % (TRIGGER % (event, table), event.upper(), table, NO_SUCH_TABLE, body))

    def _copy(self, conn, table, new, columns, key):
        """Copy every row up to the largest key there once the triggers are in place, in
        primary-key batches; return (rows copied, batches). A row with a larger key was
        inserted with the triggers in place, so it is in the copy already: a copy that
        went on to the end of the table would chase the application's inserts for as long
        as they come faster than its batches (at the end of the key order, as a test's
        sequential ids are)."""
        rows = batches = 0
        after = None
        with conn.engine.connect() as batch_conn:
            # No gap locks: the application's inserts between two keys of a batch need not wait
            # (but where statement-based binary logging refuses it: isolation.py).
            batches_read_committed(batch_conn)
            # A batch's row-lock wait, not the DDL sessions' shorter one (the pool may hand one over).
            batch_conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = %s" % BATCH_ROW_LOCK_WAIT)
            batch_conn.commit()
            # Every write before the triggers was committed before CREATE TRIGGER could take the table.
            upper = inspector.scalar(batch_conn, "SELECT MAX(`%s`) FROM `%s`" % (key, table))
            batch_conn.rollback()
            if upper is None:
                return rows, batches
            # progress hook: the rows up to ``upper``, each batch's share counted as it is copied;
            # counted only when someone can read it (a scan of the whole table)
            total = None
            if self.progress.publishes:
                total = inspector.scalar(batch_conn, "SELECT COUNT(*) FROM `%s` WHERE `%s` <= %%s" % (table, key),
                                         upper)
                batch_conn.rollback()
            self.progress.copy(table, total)
            scanned = 0
            pacing = flow_control.for_connection(batch_conn, self.batch_rows, self.galera, self.sleep)
            while True:
                stopping.check("while copying %s (%d rows copied)" % (table, rows))
                pacing.before()
                started = time.monotonic()
                where, params = "`%s` <= %%s" % key, [upper]
                if after is not None:
                    where, params = where + " AND `%s` > %%s" % key, params + [after]
                last = batch_end(batch_conn, table, key, where, params, pacing.batch_size)
                batch_conn.rollback()
                if last is not None:  # else the last batch: every row after ``after`` up to ``upper``
                    where, params = where + " AND `%s` <= %%s" % key, params + [last]
                rows += self._batch(batch_conn, copy_statement(table, new, columns, key, where), params)
                batches += 1
                if total is not None:  # progress hook
                    scanned = total if last is None else min(total, scanned + pacing.batch_size)
                    self.progress.rows(scanned)
                if last is None:
                    return rows, batches
                after = last
                pacing.after()
                self.progress.throttled(pacing.reason)  # progress hook
                flow_control.pause_after_batch(time.monotonic() - started, self.sleep)

    def _batch(self, conn, sql, params):
        """One copy batch in its own transaction, run again after a row-lock wait or a deadlock
        (Galera: lost certification), as the data migration batches are."""
        def batch():
            with conn.begin():
                return conn.exec_driver_sql(sql, tuple(params)).rowcount
        with self.progress.lock_waits("a copy batch") as on_retry:
            return with_backoff(batch, BATCH, self.sleep, on_retry=on_retry)
