# -*- coding: utf-8 -*-
"""Rebuild a large MySQL/MariaDB table without holding its writers: a shadow-table copy.

An ALTER TABLE that rebuilds a table (MODIFY, CHANGE) or builds an index holds
the application's writes: on one server at its end (an exclusive metadata lock,
then the old file's delete), on Galera for its whole run (Total Order Isolation:
every node's writers wait). On a table of at least MIN_ROWS rows an online
expand or contract takes this route instead (the pt-online-schema-change one):

1. ``_glance_new_<table>`` is created LIKE the table and the ALTER runs on it,
   empty, so at once;
2. three AFTER triggers on the table repeat each insert, update and delete on it;
3. the rows are copied in primary-key batches, each its own short transaction
   with its source rows share-locked (a write to them waits for the batch, or
   the batch sees it); on Galera, batches are smaller (GALERA_BATCH_ROWS), and
   one that lost certification to a write through another node runs again;
4. the child tables' foreign keys are pointed at the copy, now complete and
   kept in step (``foreign_key_checks = 0``, ALGORITHM=INPLACE: metadata only;
   dropped and added again under the same name, Glance's; on one server all
   of them run under one LOCK TABLES of the table, the copy and every child,
   see _point_foreign_keys and _tables_locked);
5. one ``RENAME TABLE`` swaps the names atomically (foreign keys follow the
   copy to the table's name);
6. the old copy is dropped, with the triggers (they left with it).

A table's own triggers (Glance's Ocata ones, on images between ocata_expand01 and
ocata_contract01) would leave with the old copy too. They are carried across:
just before the swap the copy gets a stand-in of each (revisions/visibility.py:
the same derivations, never refusing), which keeps release N-1 and N writes in
step from the swap on; after it, Glance's trigger is created again under its own
name, to run before the stand-in (PRECEDES), and the stand-in is dropped. While
both run, the stand-in finds the row Glance's trigger completed and changes
nothing. The stand-ins come after the rows are copied: a copied row keeps its
NULL visibility for the data migration, which a stand-in would have set.

What is left is what the ALTER alone gives: the same columns, indexes and
constraint names, so parity holds. A run stopped part-way leaves a copy
behind: the next one removes it first (it holds the migration lock).

Not taken for a table with triggers of its own other than those.
"""

from __future__ import annotations

import contextlib
import os
import re
import time

from .errors import GlanceDbError
from .flow_control import for_connection, pause_after_batch
from .progress import Progress
from . import leftovers, stopping
from .leftovers import FOREIGN_KEYS, NEW, OLD, STAND_IN, TRIGGER, TRIGGER_PREFIX
from .retry import DEADLOCK, LOCK_WAIT_TIMEOUT, error_code, with_backoff
from .revisions.visibility import TRIGGER_NAMES as CARRIED_TRIGGERS, create_trigger

MIN_ROWS = 10000
BATCH_ROWS = 1000
# On Galera every other node applies each batch as one write set, in commit order,
# and its own writers' commits wait behind it: smaller batches, shorter waits
# (docs/galera.md, "Copy batches on the cluster": at 200,000 images, writes slower
# than 20 ms on nodes 2 and 3 fell from 152-163 to 14-24 per expand, for a copy
# 1.8 times as long).
GALERA_BATCH_ROWS = 250
EVENTS = ("insert", "update", "delete")
# CREATE TRIGGER refused: binary logging without SUPER or log_bin_trust_function_creators
# (1419), or no TRIGGER privilege (1142).
TRIGGERS_REFUSED = (1419, 1142)
LOCK_TABLES_REFUSED = (1044, 1142)  # no LOCK TABLES privilege on the database, or on a table
# A NOWAIT LOCK TABLES tried this often (pauses of 10 ms doubling to 200 ms: about half a
# second) before it waits for the tables (_lock_tables): under writers that never leave the
# tables free, each repointing must not take much longer than a waiting one.
LOCK_TABLES_TRIES = 6
LOCK_TABLES_FIRST_PAUSE = 0.01
LOCK_TABLES_MAX_PAUSE = 0.2
NO_SUCH_TABLE = 1146
NO_SUCH_TRIGGER = 1360
REPAIR = "_glance_fix_%s"  # a table's name for a moment, to rewrite its triggers' name files


class CopyRefused(Exception):
    """The server would not let the copy keep itself in step; nothing of it is left."""


class LeftoverTrigger(GlanceDbError):
    """A trigger of ours that the server keeps listing after it was dropped."""


class NoSpaceForCopy(GlanceDbError):
    """The server's data directory lacks the room a copy needs; nothing was started."""


MIB = 1 << 20


def space_needed(data, indexes, binary_logging):
    """The bytes a copy of a table of ``data`` and ``indexes`` bytes needs free in the server's
    data directory while it runs: the copy's data and indexes, and, with binary logging,
    the logged row images of every copied row (about the data once more). InnoDB's redo log
    has a fixed size in MariaDB 10.11: it needs no more room (it only wraps sooner)."""
    log = data if binary_logging else 0
    return {"data": data, "indexes": indexes, "binary_log": log, "total": data + indexes + log}


def space_text(needed):
    return "%d MiB (data %d MiB, indexes %d MiB, binary log %d MiB)" % tuple(
        -(-needed[k] // MIB) for k in ("total", "data", "indexes", "binary_log"))


def refuse_without_room(table, needed, datadir):
    """Raise NoSpaceForCopy when the filesystem of ``datadir`` cannot hold ``needed``."""
    disk = os.statvfs(datadir)
    free = disk.f_bavail * disk.f_frsize
    if free < needed["total"]:
        raise NoSpaceForCopy(
            "A shadow copy of table %s needs about %s free in %s, which has %d MiB free: nothing was "
            "started. Free space there (or grow the filesystem), then run again." % (
                table, space_text(needed), datadir, free // MIB))


# The statements a copy can take, each as an ALTER TABLE clause for the copy. Only
# those that rebuild the table or build an index need one; the others (instant
# anyway) join a copy that one of those needs in the same revision, and otherwise
# run as they are. IF [NOT] EXISTS: a resumed run's table (and so its copy) may
# have the change already.
_ALTER = re.compile(r"^\s*ALTER\s+TABLE\s+`?(\w+)`?\s+(.*)$", re.IGNORECASE | re.DOTALL)
_CLAUSES = (
    (re.compile(r"^(MODIFY|CHANGE)\b", re.IGNORECASE), None, True),
    (re.compile(r"^ADD\s+(COLUMN\s+)?(?!INDEX|KEY|UNIQUE|CONSTRAINT|PRIMARY|FOREIGN)", re.IGNORECASE),
     "ADD COLUMN IF NOT EXISTS ", False),
    (re.compile(r"^DROP\s+(COLUMN\s+)?(?!INDEX|KEY|CONSTRAINT|PRIMARY|FOREIGN)", re.IGNORECASE),
     "DROP COLUMN IF EXISTS ", False),
    (re.compile(r"^DROP\s+(INDEX|KEY)\s+", re.IGNORECASE), "DROP INDEX IF EXISTS ", False),
    (re.compile(r"^ADD\s+(UNIQUE\s+)?(INDEX|KEY)\s+", re.IGNORECASE), None, True),
)
_CREATE_INDEX = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(`?\w+`?)\s+ON\s+`?(\w+)`?\s*(\(.*\))\s*$",
                           re.IGNORECASE | re.DOTALL)
_DROP_INDEX = re.compile(r"^\s*DROP\s+INDEX\s+(`?\w+`?)\s+ON\s+`?(\w+)`?\s*$", re.IGNORECASE)


def alteration(sql):
    """(table, ALTER TABLE clause for the copy, whether it needs one) when ``sql`` is a
    statement a copy can take, else None."""
    sql = sql.strip().rstrip(";")
    index = _CREATE_INDEX.match(sql)
    if index:
        return index.group(3), "ADD %sINDEX IF NOT EXISTS %s %s" % (
            index.group(1) or "", index.group(2), index.group(4)), True
    dropped = _DROP_INDEX.match(sql)
    if dropped:
        return dropped.group(2), "DROP INDEX IF EXISTS %s" % dropped.group(1), False
    altered = _ALTER.match(sql)
    if not altered or "," in re.sub(r"\([^()]*\)", "", altered.group(2)):
        return None  # one operation per statement, as Alembic emits them
    table, clause = altered.groups()
    for pattern, replacement, rebuilds in _CLAUSES:
        head = pattern.match(clause)
        if head:
            if replacement and not re.search(r"\bIF\s+(NOT\s+)?EXISTS\b", clause, re.IGNORECASE):
                clause = replacement + clause[head.end():]
            return table, clause, rebuilds
    return None


def _scalar(conn, sql, *params):
    row = conn.exec_driver_sql(sql, params).first()
    return row[0] if row else None


def _names(conn, sql, *params):
    return [row[0] for row in conn.exec_driver_sql(sql, params).fetchall()]


class TableCopy(object):
    """Runs ALTER TABLE statements on large tables through a shadow copy (see the module's doc)."""

    def __init__(self, run_ddl, galera=False, sleep=time.sleep, batch_rows=None, min_rows=MIN_ROWS,
                 warn=None, datadir=None, progress=None):
        self.run_ddl = run_ddl  # (connection, sql): a DDL statement with the usual retries
        self.progress = progress or Progress()  # progress.py: what the run publishes (by default nothing)
        self.warn = warn or (lambda text: None)
        self.datadir = datadir  # the server's data directory on this host (mysql_datadir), or None
        self._sizes = {}  # table -> the largest (data, indexes) seen in this run
        self.galera = galera
        self.sleep = sleep
        self.batch_rows = batch_rows or (GALERA_BATCH_ROWS if galera else BATCH_ROWS)
        self.min_rows = min_rows
        self.copies = []  # {"table", "alter", "rows", "seconds", "batches"} per copy made

    def wanted(self, conn, table):
        """Whether ``table`` is large enough, has a one-column primary key and no triggers
        of its own but those a copy carries across."""
        rows = _scalar(conn, "SELECT COUNT(*) FROM (SELECT 1 FROM `%s` LIMIT %d) AS t" % (table, self.min_rows))
        if rows < self.min_rows:  # counted up to min_rows, no further
            return False
        uncarried = set(self._own_triggers(conn, table)) - set(CARRIED_TRIGGERS)
        return not uncarried and len(self._primary_key(conn, table)) == 1

    def rebuild(self, conn, table, clause):
        """ALTER TABLE ``table`` ``clause`` through a shadow copy."""
        started = time.monotonic()
        self.clear_leftovers(conn, table)
        needed = self._check_space(conn, table)
        new, old = NEW % table, OLD % table
        self.run_ddl(conn, "CREATE TABLE `%s` LIKE `%s`" % (new, table))
        try:
            before = self._definition(conn, new)
            self.run_ddl(conn, "ALTER TABLE `%s` %s" % (new, clause))
            if self._definition(conn, new) == before:  # e.g. a resumed run: the table has it already
                self.run_ddl(conn, "DROP TABLE `%s`" % new)
                return
            kept = set(self._columns(conn, table))
            columns = [c for c in self._columns(conn, new) if c in kept]
            key = self._primary_key(conn, table)[0]
            for event in EVENTS:
                try:
                    self.run_ddl(conn, self._trigger(event, table, new, columns, key))
                except Exception as exc:  # sa.exc.DBAPIError; its code tells a refusal
                    if error_code(exc) not in TRIGGERS_REFUSED:
                        raise
                    raise CopyRefused(str(getattr(exc, "orig", exc)))
            rows, batches = self._copy(conn, table, new, columns, key)
            self.progress.stage("pointing foreign keys at the copy")  # progress hook
            self._record_foreign_keys(conn, table)
            self._point_foreign_keys(conn, table, new)
            for name in self._own_triggers(conn, table):
                self.run_ddl(conn, create_trigger(name, table=new, name=STAND_IN % name, stand_in=True))
        except BaseException:
            self._clear_after_failure(conn, table)
            raise
        self.progress.stage("swapping")  # progress hook
        self.run_ddl(conn, "RENAME TABLE `%s` TO `%s`, `%s` TO `%s`" % (table, old, new, table))
        self._drop_old(conn, table)
        self._restore_foreign_keys(conn, table)  # none is missing: drops the record
        self._restore_carried(conn, table)
        self.copies.append({"table": table, "alter": clause, "rows": rows, "batches": batches,
                            "seconds": round(time.monotonic() - started, 2), "estimated_bytes": needed})

    def _check_space(self, conn, table):
        """The room the copy needs (space_needed); refused when the data directory is at
        hand and lacks it, else a warning says how much to have: the server does not
        report its free disk. The server's sizes are statistics, stale for a table just
        swapped in (a second copy of it in the same run): the largest seen is kept, and
        with the data directory the table's file says how much it holds."""
        data, indexes, binlog = conn.exec_driver_sql(
            "SELECT DATA_LENGTH, INDEX_LENGTH, @@log_bin FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,)).one()
        data, indexes = int(data or 0), int(indexes or 0)
        if self.datadir:
            database = conn.exec_driver_sql("SELECT DATABASE()").scalar()
            try:
                held = os.stat(os.path.join(self.datadir, database, table + ".ibd")).st_blocks * 512
            except OSError:  # not file-per-table
                held = 0
            data = max(data, held - indexes)
        seen = self._sizes.get(table, (0, 0))
        data, indexes = self._sizes[table] = max(data, seen[0]), max(indexes, seen[1])
        needed = space_needed(data, indexes, bool(int(binlog)))
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
        self._drop_triggers(conn, table, [TRIGGER % (event, table) for event in EVENTS])
        if self._exists(conn, new):
            self._point_foreign_keys(conn, new, table)
            self.run_ddl(conn, "DROP TABLE `%s`" % new)
        self._restore_foreign_keys(conn, table)
        self._drop_old(conn, table)
        self._restore_carried(conn, table)

    def _drop_triggers(self, conn, table, names):
        """Drop those of ``names`` that are on ``table``, and confirm they are gone.

        With its disk full, MariaDB answers DROP TRIGGER with success, deletes the
        trigger's name file and keeps the trigger in the table's trigger file: the
        trigger still fires, and a later DROP TRIGGER answers 1360 (no such trigger).
        A RENAME TABLE writes every name file of the table's triggers again, so the
        drop can then succeed. A trigger still listed after that is reported, and
        what it writes to is kept (dropping it would fail every write on the table)."""
        for _attempt in range(2):  # the second for a drop answered with success and not done
            listed = [name for name in self._triggers(conn, table) if name in names]
            if not listed:
                return
            for name in listed:
                try:
                    self.run_ddl(conn, "DROP TRIGGER `%s`" % name)
                except Exception as exc:  # sa.exc.DBAPIError; its code tells a lost name file
                    if error_code(exc) != NO_SUCH_TRIGGER:
                        raise
                    self.run_ddl(conn, "RENAME TABLE `{t}` TO `{r}`, `{r}` TO `{t}`".format(
                        t=table, r=REPAIR % table))
                    self.run_ddl(conn, "DROP TRIGGER `%s`" % name)
        still = [name for name in self._triggers(conn, table) if name in names]
        if still:
            raise LeftoverTrigger(
                "The database server still lists %s on table %s after DROP TRIGGER, as MariaDB does "
                "when its disk is full; what they write to is kept, so that the application's writes "
                "go on. Free space in the server's data directory, then run the phase again: it "
                "clears them first." % (", ".join(still), table))

    def _restore_carried(self, conn, table):
        """After the swap: each stand-in on ``table`` makes way for Glance's own trigger,
        created first so that a write never meets the table without one of them."""
        triggers = self._triggers(conn, table)
        for stand_in in [name for name in triggers if name.startswith(STAND_IN % "")]:
            name = stand_in[len(STAND_IN % ""):]
            if name not in triggers:
                self.run_ddl(conn, create_trigger(name, table=table, precedes=stand_in))
        self._drop_triggers(conn, table, [name for name in triggers if name.startswith(STAND_IN % "")])

    def _own_triggers(self, conn, table):
        """The triggers on ``table`` that are not the copy's own (nor stand-ins)."""
        return [name for name in self._triggers(conn, table)
                if not name.startswith((TRIGGER_PREFIX, STAND_IN % ""))]

    @staticmethod
    def _triggers(conn, table):
        return _names(conn, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE "
                            "EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = %s ORDER BY TRIGGER_NAME",
                      table)

    def _drop_old(self, conn, table):
        """Drop the table's old copy after a swap; its triggers (the copy's, Glance's) go with it."""
        if self._exists(conn, OLD % table):
            self.run_ddl(conn, "DROP TABLE `%s`" % (OLD % table))

    @staticmethod
    def _exists(conn, table):
        return bool(_scalar(conn, "SELECT COUNT(*) FROM information_schema.TABLES "
                                  "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", table))

    @staticmethod
    def _definition(conn, table):
        return conn.exec_driver_sql("SHOW CREATE TABLE `%s`" % table).one()[1]

    @staticmethod
    def _columns(conn, table):
        return _names(conn, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                            "DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", table)

    @staticmethod
    def _primary_key(conn, table):
        return _names(conn, "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE "
                            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' "
                            "ORDER BY ORDINAL_POSITION", table)

    @staticmethod
    def _trigger(event, table, new, columns, key):
        names = ", ".join("`%s`" % c for c in columns)
        values = ", ".join("NEW.`%s`" % c for c in columns)
        updates = ", ".join("`%s` = VALUES(`%s`)" % (c, c) for c in columns)
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
        names = ", ".join("`%s`" % c for c in columns)
        copy = ("INSERT INTO `{n}` ({c}) SELECT {c} FROM `{t}` WHERE {where} LOCK IN SHARE MODE "
                "ON DUPLICATE KEY UPDATE `{n}`.`{k}` = `{n}`.`{k}`")
        rows = batches = 0
        after = None
        with conn.engine.connect() as batch_conn:
            # No gap locks: the application's inserts between two keys of a batch need not wait.
            # The server's row-lock wait, not the DDL sessions' short one (the pool may hand one over).
            batch_conn.exec_driver_sql("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            batch_conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = DEFAULT")
            batch_conn.commit()
            # Every write before the triggers was committed before CREATE TRIGGER could take the table.
            upper = _scalar(batch_conn, "SELECT MAX(`%s`) FROM `%s`" % (key, table))
            batch_conn.rollback()
            if upper is None:
                return rows, batches
            # progress hook: the rows up to ``upper``, each batch's share counted as it is copied
            total = _scalar(batch_conn, "SELECT COUNT(*) FROM `%s` WHERE `%s` <= %%s" % (table, key), upper)
            batch_conn.rollback()
            self.progress.copy(table, total)
            scanned = 0
            pacing = for_connection(batch_conn, self.batch_rows, self.galera, self.sleep)
            while True:
                stopping.check("while copying %s (%d rows copied)" % (table, rows))
                pacing.before()
                started = time.monotonic()
                where, params = "`%s` <= %%s" % key, [upper]
                if after is not None:
                    where, params = where + " AND `%s` > %%s" % key, params + [after]
                last = _scalar(batch_conn, "SELECT `%s` FROM `%s` WHERE %s ORDER BY `%s` LIMIT 1 OFFSET %d"
                               % (key, table, where, key, pacing.batch_size - 1), *params)
                batch_conn.rollback()
                if last is not None:  # else the last batch: every row after ``after`` up to ``upper``
                    where, params = where + " AND `%s` <= %%s" % key, params + [last]
                rows += self._batch(batch_conn, copy.format(n=new, c=names, t=table, k=key, where=where), params)
                batches += 1
                scanned = total if last is None else min(total, scanned + pacing.batch_size)  # progress hook
                self.progress.rows(scanned)  # progress hook
                if last is None:
                    return rows, batches
                after = last
                pacing.after()
                self.progress.throttled(  # progress hook
                    "Galera flow control" if pacing.batch_size < self.batch_rows else None)
                pause_after_batch(time.monotonic() - started, self.sleep)

    def _batch(self, conn, sql, params):
        """One copy batch in its own transaction, run again after a deadlock (Galera: lost
        certification), as the data migration batches are."""
        def batch():
            with conn.begin():
                return conn.exec_driver_sql(sql, tuple(params)).rowcount
        return with_backoff(batch, (DEADLOCK,), self.sleep)

    @staticmethod
    def _foreign_keys(conn, source):
        """{(child, name): the constraint's clause after its name, with ``{target}`` for the
        referenced table} of every foreign key that references ``source``."""
        found = conn.exec_driver_sql(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME, "
            "r.UPDATE_RULE, r.DELETE_RULE FROM information_schema.KEY_COLUMN_USAGE k "
            "JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
            "AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME "
            "WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_SCHEMA = DATABASE() "
            "AND k.REFERENCED_TABLE_NAME = %s ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            (source,)).fetchall()
        keys = {}
        for child, name, column, referenced, on_update, on_delete in found:
            entry = keys.setdefault((child, name), ([], [], on_update, on_delete))
            entry[0].append("`%s`" % column)
            entry[1].append("`%s`" % referenced)
        clauses = {}
        for key, (columns, referenced, on_update, on_delete) in keys.items():
            rules = "".join(" ON %s %s" % (what, rule) for what, rule in (("DELETE", on_delete), ("UPDATE", on_update))
                            if rule != "RESTRICT")
            clauses[key] = "FOREIGN KEY (%s) REFERENCES `{target}` (%s)%s" % (
                ", ".join(columns), ", ".join(referenced), rules)
        return clauses

    def _record_foreign_keys(self, conn, table):
        """Keep the definitions of the foreign keys that reference ``table`` in FOREIGN_KEYS,
        before they are pointed at the copy: each is dropped and added again in two
        statements, and a run stopped between them leaves a child without it, which the
        next run adds again from here (_restore_foreign_keys)."""
        record = FOREIGN_KEYS % table
        self.run_ddl(conn, "CREATE TABLE IF NOT EXISTS `%s` (child VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL, "
                           "definition TEXT NOT NULL, PRIMARY KEY (child, name)) ENGINE=InnoDB" % record)
        # Committed by the first DROP FOREIGN KEY (MySQL commits before each DDL statement).
        for (child, name), definition in sorted(self._foreign_keys(conn, table).items()):
            conn.exec_driver_sql("REPLACE INTO `%s` VALUES (%%s, %%s, %%s)" % record, (child, name, definition))

    def _restore_foreign_keys(self, conn, table):
        """Add again, towards ``table``, each recorded foreign key that its child lacks; then
        drop the record."""
        record = FOREIGN_KEYS % table
        if not self._exists(conn, record):
            return
        recorded = conn.exec_driver_sql("SELECT child, name, definition FROM `%s`" % record).fetchall()
        present = set((child, name) for child, name in conn.exec_driver_sql(
            "SELECT TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE()").fetchall())
        missing = [(child, name, definition) for child, name, definition in recorded if (child, name) not in present]
        with self._checks_off(conn):
            for child, name, definition in missing:
                self.run_ddl(conn, "ALTER TABLE `%s` ADD CONSTRAINT `%s` %s, ALGORITHM=INPLACE, LOCK=NONE"
                             % (child, name, definition.format(target=table)))
        self.run_ddl(conn, "DROP TABLE `%s`" % record)

    def _point_foreign_keys(self, conn, source, target):
        """Point every foreign key that references ``source`` at ``target``, names kept.

        Every child is locked with the two tables, for all the keys at once: a writer of
        any child checks its foreign key with an InnoDB lock on ``source`` but holds no
        metadata lock there, so locking only the child being altered let an image_members
        INSERT, between two children's turns, hold ``source`` under our LOCK TABLES and
        die as the deadlock's victim (1213, which Glance does not retry for a member: 2
        of 47 runs of test_glance_client.py). With every child locked, such a writer
        waits for our one lock instead (tens of ms per key)."""
        keys = self._foreign_keys(conn, source)
        if not keys:
            return
        children = [child for child, _name in keys]
        with self._checks_off(conn), self._tables_locked(conn, [source, target] + children):
            for (child, name), definition in sorted(keys.items()):
                # Two statements: one cannot drop a constraint name and add it again.
                self.run_ddl(conn, "ALTER TABLE `%s` DROP FOREIGN KEY `%s`, ALGORITHM=INPLACE, LOCK=NONE"
                             % (child, name))
                self.run_ddl(conn, "ALTER TABLE `%s` ADD CONSTRAINT `%s` %s, ALGORITHM=INPLACE, LOCK=NONE"
                             % (child, name, definition.format(target=target)))

    @staticmethod
    @contextlib.contextmanager
    def _checks_off(conn):
        """Foreign keys added without checking rows: metadata only."""
        conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
        try:
            yield
        finally:
            if not conn.invalidated:  # a lost connection takes its session settings with it
                conn.exec_driver_sql("SET SESSION foreign_key_checks = 1")

    def _lock_tables(self, conn, statement):
        """LOCK TABLES without ever waiting while holding some of them: a LOCK TABLES that
        waits for a child holds the referenced table meanwhile, and an application
        transaction that holds the child and then wants that table is chosen as the
        deadlock's victim (1213; Glance retries it only in image_create, _update and
        _destroy: a tag, member or location request fails). NOWAIT takes all of them at
        once or none, so it is tried again after a short pause while transactions hold
        them, LOCK_TABLES_TRIES times; then it waits as a plain LOCK TABLES does."""
        pause = LOCK_TABLES_FIRST_PAUSE
        for _attempt in range(LOCK_TABLES_TRIES):
            try:
                conn.exec_driver_sql(statement + " NOWAIT")
                return
            except Exception as exc:  # sa.exc.DBAPIError; its code tells a table in use
                if error_code(exc) != LOCK_WAIT_TIMEOUT:
                    raise
            self.sleep(pause)
            pause = min(pause * 2, LOCK_TABLES_MAX_PAUSE)
        self.run_ddl(conn, statement)

    @contextlib.contextmanager
    def _tables_locked(self, conn, tables):
        """On one server, hold ``tables`` (the referenced table, the copy, the children) for
        the foreign keys' statements. Unlocked, each statement waits for the child's
        writers while holding the referenced table, and a writer that holds the referenced
        table (an image it just inserted) and then wants the child is chosen as the deadlock's
        victim (1213, which Glance retries after 0.5 s). LOCK TABLES takes all of them in one
        request, in the server's own order, before either statement starts: writers wait for
        the two statements instead (tens of ms), none is aborted. On Galera every DDL runs in
        isolation anyway (TOI) and LOCK TABLES is not replicated: not taken there. Without
        the LOCK TABLES privilege the statements run unlocked, as before."""
        locked = not self.galera
        if locked:
            try:
                self._lock_tables(conn, "LOCK TABLES " + ", ".join("`%s` WRITE" % t for t in sorted(set(tables))))
            except Exception as exc:  # sa.exc.DBAPIError; its code tells a refusal
                if error_code(exc) not in LOCK_TABLES_REFUSED:
                    raise
                locked = False
        try:
            yield
        finally:
            if locked and not conn.invalidated:
                conn.exec_driver_sql("UNLOCK TABLES")
