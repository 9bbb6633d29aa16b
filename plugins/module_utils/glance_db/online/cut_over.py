# -*- coding: utf-8 -*-
"""The cut-over of a shadow copy: the copy, complete and kept in step, takes the table's place.

copier.TableCopy.rebuild runs it once the rows are copied (steps 4 to 6 of copier.py):

4. the copy gets stand-ins of the table's own triggers (below), then the child
   tables' foreign keys are pointed at the copy (prepare:
   ``foreign_key_checks = 0``, ALGORITHM=INPLACE: metadata only; dropped and added
   again under the same name, Glance's; on one server all of them run under one
   LOCK TABLES of the table, the copy and every child, see point_foreign_keys and
   _tables_locked), their definitions recorded first (FOREIGN_KEYS);
5. one ``RENAME TABLE`` swaps the names atomically (swap; foreign keys follow the
   copy to the table's name);
6. the old copy is dropped, with the copy's triggers (they left with it).

A table's own triggers (Glance's Ocata ones, on images between ocata_expand01 and
ocata_contract01) would leave with the old copy too. They are carried across with
what the revisions pass in (``carried``: Glance's name -> the function that writes
its CREATE TRIGGER): before its foreign keys move, the copy gets a stand-in of each (the
same derivations, never refusing), which keeps release N-1 and N writes in step
from the swap on; after it, Glance's trigger is created again under its own name,
to run before the stand-in (PRECEDES), and the stand-in is dropped. While both run,
the stand-in finds the row Glance's trigger completed and changes nothing. The
stand-ins come after the rows are copied: a copied row keeps its NULL visibility
for the data migration, which a stand-in would have set.

A run stopped part-way leaves some of this half-done; the copier's clear_leftovers
finishes or undoes it with the same steps.
"""

from __future__ import annotations

import contextlib
import time

from ..errors import GlanceDbError
from ..leftovers import FOREIGN_KEYS, OLD, STAND_IN
from ..progress import Progress
from ..db_errors import DB_ACCESS_DENIED, LOCK_WAIT_TIMEOUT, NO_SUCH_TRIGGER, TABLE_ACCESS_DENIED, code_of
from . import inspector

LOCK_TABLES_REFUSED = (DB_ACCESS_DENIED, TABLE_ACCESS_DENIED)  # no LOCK TABLES privilege on the database, or on a table
# A NOWAIT LOCK TABLES tried this often (pauses of 10 ms doubling to 200 ms: about half a
# second) before it waits for the tables (_lock_tables): under writers that never leave the
# tables free, each repointing must not take much longer than a waiting one.
LOCK_TABLES_TRIES = 6
LOCK_TABLES_FIRST_PAUSE = 0.01
LOCK_TABLES_MAX_PAUSE = 0.2
REPAIR = "_glance_fix_%s"  # a table's name for a moment, to rewrite its triggers' name files


class LeftoverTrigger(GlanceDbError):
    """A trigger of ours that the server keeps listing after it was dropped."""


class CutOver(object):
    """Puts a complete copy in its table's place (see the module's doc)."""

    def __init__(self, run_ddl, profile=None, sleep=time.sleep, carried=None, progress=None):
        self.run_ddl = run_ddl  # (connection, sql): a DDL statement with the usual retries
        self.progress = progress or Progress()  # says when the LOCK TABLES waits (progress.py)
        self.galera = profile is not None and profile.on_galera
        self.sleep = sleep
        self.carried = carried or {}  # Glance's trigger name -> create(table, name=, precedes=, stand_in=)

    def prepare(self, conn, table, new):
        """Before the swap: a stand-in on ``new`` for each of ``table``'s own triggers, then
        the children's foreign keys recorded and pointed at ``new``. The stand-ins first: once
        a child's foreign key names ``new``, that child's writers hold a metadata lock on it,
        and a CREATE TRIGGER on ``new`` (on Galera, in isolation) would abort them."""
        for name in inspector.own_triggers(conn, table):
            self.run_ddl(conn, self.carried[name](table=new, name=STAND_IN % name, stand_in=True))
        self.record_foreign_keys(conn, table)
        self.point_foreign_keys(conn, table, new)

    def swap(self, conn, table, new):
        """``new`` becomes ``table``; the old table goes, and Glance's triggers come back."""
        self.run_ddl(conn, "RENAME TABLE `%s` TO `%s`, `%s` TO `%s`" % (table, OLD % table, new, table))
        self.drop_old(conn, table)
        self.restore_foreign_keys(conn, table)  # none is missing: drops the record
        self.restore_carried(conn, table)

    def drop_old(self, conn, table):
        """Drop the table's old copy after a swap; its triggers (the copy's, Glance's) go with it."""
        if inspector.exists(conn, OLD % table):
            self.run_ddl(conn, "DROP TABLE `%s`" % (OLD % table))

    def restore_carried(self, conn, table):
        """After the swap: each stand-in on ``table`` makes way for Glance's own trigger,
        created first so that a write never meets the table without one of them."""
        triggers = inspector.triggers(conn, table)
        for stand_in in [name for name in triggers if name.startswith(STAND_IN % "")]:
            name = stand_in[len(STAND_IN % ""):]
            if name not in triggers:
                self.run_ddl(conn, self.carried[name](table=table, precedes=stand_in))
        self.drop_triggers(conn, table, [name for name in triggers if name.startswith(STAND_IN % "")])

    def drop_triggers(self, conn, table, names):
        """Drop those of ``names`` that are on ``table``, and confirm they are gone.

        With its disk full, MariaDB answers DROP TRIGGER with success, deletes the
        trigger's name file and keeps the trigger in the table's trigger file: the
        trigger still fires, and a later DROP TRIGGER answers 1360 (no such trigger).
        A RENAME TABLE writes every name file of the table's triggers again, so the
        drop can then succeed. A trigger still listed after that is reported, and
        what it writes to is kept (dropping it would fail every write on the table)."""
        for _attempt in range(2):  # the second for a drop answered with success and not done
            listed = [name for name in inspector.triggers(conn, table) if name in names]
            if not listed:
                return
            for name in listed:
                try:
                    self.run_ddl(conn, "DROP TRIGGER `%s`" % name)
                except Exception as exc:  # sa.exc.DBAPIError; its code tells a lost name file
                    if code_of(exc) != NO_SUCH_TRIGGER:
                        raise
                    self.run_ddl(conn, "RENAME TABLE `{t}` TO `{r}`, `{r}` TO `{t}`".format(
                        t=table, r=REPAIR % table))
                    self.run_ddl(conn, "DROP TRIGGER `%s`" % name)
        still = [name for name in inspector.triggers(conn, table) if name in names]
        if still:
            raise LeftoverTrigger(
                "The database server still lists %s on table %s after DROP TRIGGER, as MariaDB does "
                "when its disk is full; what they write to is kept, so that the application's writes "
                "go on. Free space in the server's data directory, then run the phase again: it "
                "clears them first." % (", ".join(still), table))

    def record_foreign_keys(self, conn, table):
        """Keep the definitions of the foreign keys that reference ``table`` in FOREIGN_KEYS,
        before they are pointed at the copy: each is dropped and added again in two
        statements, and a run stopped between them leaves a child without it, which the
        next run adds again from here (restore_foreign_keys)."""
        record = FOREIGN_KEYS % table
        self.run_ddl(conn, "CREATE TABLE IF NOT EXISTS `%s` (child VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL, "
                           "definition TEXT NOT NULL, PRIMARY KEY (child, name)) ENGINE=InnoDB" % record)
        # Committed by the first DROP FOREIGN KEY (MySQL commits before each DDL statement).
        for (child, name), definition in sorted(inspector.foreign_keys(conn, table).items()):
            conn.exec_driver_sql("REPLACE INTO `%s` VALUES (%%s, %%s, %%s)" % record, (child, name, definition))

    def restore_foreign_keys(self, conn, table):
        """Add again, towards ``table``, each recorded foreign key that its child lacks; then
        drop the record."""
        record = FOREIGN_KEYS % table
        if not inspector.exists(conn, record):
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

    def point_foreign_keys(self, conn, source, target):
        """Point every foreign key that references ``source`` at ``target``, names kept.

        Every child is locked with the two tables, for all the keys at once: a writer of
        any child checks its foreign key with an InnoDB lock on ``source`` but holds no
        metadata lock there, so locking only the child being altered let an image_members
        INSERT, between two children's turns, hold ``source`` under our LOCK TABLES and
        die as the deadlock's victim (1213, which Glance does not retry for a member: 2
        of 47 runs of test_glance_client.py). With every child locked, such a writer
        waits for our one lock instead (tens of ms per key)."""
        keys = inspector.foreign_keys(conn, source)
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

    def _lock_tables(self, conn, tables):
        """LOCK TABLES without ever waiting while holding some of them: a LOCK TABLES that
        waits for a child holds the referenced table meanwhile, and an application
        transaction that holds the child and then wants that table is chosen as the
        deadlock's victim (1213; Glance retries it only in image_create, _update and
        _destroy: a tag, member or location request fails). NOWAIT takes all of them at
        once or none, so it is tried again after a short pause while transactions hold
        them, LOCK_TABLES_TRIES times; then it waits as a plain LOCK TABLES does. Meanwhile the
        run says it waits."""
        statement = "LOCK TABLES " + ", ".join("`%s` WRITE" % t for t in tables)
        pause = LOCK_TABLES_FIRST_PAUSE
        for _attempt in range(LOCK_TABLES_TRIES):
            try:
                conn.exec_driver_sql(statement + " NOWAIT")
                break
            except Exception as exc:  # sa.exc.DBAPIError; its code tells a table in use
                if code_of(exc) != LOCK_WAIT_TIMEOUT:
                    raise
            self.progress.throttled("lock wait: LOCK TABLES of %s waits for the application's transactions"
                                    % ", ".join(tables))
            self.sleep(pause)
            pause = min(pause * 2, LOCK_TABLES_MAX_PAUSE)
        else:
            self.run_ddl(conn, statement)
        self.progress.throttled(None)

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
                self._lock_tables(conn, sorted(set(tables)))
            except Exception as exc:  # sa.exc.DBAPIError; its code tells a refusal
                if code_of(exc) not in LOCK_TABLES_REFUSED:
                    raise
                locked = False
        try:
            yield
        finally:
            if locked and not conn.invalidated:
                conn.exec_driver_sql("UNLOCK TABLES")
