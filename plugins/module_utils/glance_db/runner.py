# -*- coding: utf-8 -*-
"""Applies revisions and data migrations, and keeps alembic_version as Glance does.

Each revision runs through Alembic's operations in a transaction together with
its alembic_version rows: atomic on PostgreSQL and SQLite, where the revisions
of one run share that transaction. Each data migration batch is its own short
transaction.
"""

from __future__ import annotations

import time
import warnings

from .deps import MigrationContext, Operations, sa
from .errors import DataLossRefused
from .flow_control import batch_rows, for_connection, pause_after_batch, record
from . import stopping
from .graph import GRAPH
from .isolation import batches_read_committed
from .online.alembic_hook import OnlineDDL
from .db_errors import BATCH, BATCH_ROW_LOCK_WAIT, with_backoff
from .options import RunOptions
from .profile import ServerProfile
from .progress import Progress
from .revisions import CARRIED_TRIGGERS
from .revisions.online import ONLINE_OPTION

VERSION_TABLE = "alembic_version"
DDL_INNODB_LOCK_WAIT_SECONDS = 2


def _version_table():
    # The table exactly as Alembic creates it.
    return sa.Table(
        VERSION_TABLE, sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )


def write_version_rows(conn, rows):
    """Make alembic_version hold exactly ``rows`` (creating the table if needed)."""
    table = _version_table()
    table.create(conn, checkfirst=True)
    present = set(conn.execute(sa.select(table.c.version_num)).scalars())
    stale = present - set(rows)
    if stale:
        conn.execute(table.delete().where(table.c.version_num.in_(sorted(stale))))
    for row in rows:
        if row not in present:
            conn.execute(table.insert().values(version_num=row))


class Runner(object):
    """Writes to one database; the caller holds the migration lock."""

    def __init__(self, engine, options=None, profile=None, online=False, warn=None,
                 sleep=time.sleep, tablespace_hold=None, progress=None):
        """``options``: the run's options.RunOptions; ``profile``: the server's profile.ServerProfile
        (read by the caller; by default a server that is no Galera node); ``progress``: what the run
        publishes (progress.py; by default nothing)."""
        self.engine = engine
        self.options = options or RunOptions()
        self.profile = profile or ServerProfile(engine.url.get_backend_name())
        self.progress = progress or Progress()
        self.online = online
        self.galera = self.profile.on_galera  # a Galera node: batches back off under flow control
        self.flow_control = {}  # data migration name -> FlowControl.result(), on Galera
        self.sleep = sleep
        self.ddl_lock_wait_timeout = self.options.ddl_lock_wait_timeout
        self.warnings = []
        # Glance's own triggers, which a shadow copy carries across its swap, come from the revisions.
        self.online_ddl = OnlineDDL(warn or self.warnings.append, self.options, self.profile, hold=tablespace_hold,
                                    copy=online, carried=CARRIED_TRIGGERS, progress=self.progress)

    def _begin(self, ddl=True):
        conn = self.engine.connect()
        if conn.dialect.name == "mysql" and self.ddl_lock_wait_timeout:
            # Bound how long DDL may queue application queries behind a metadata lock, and,
            # for DDL, behind an InnoDB table lock too (shorter): an online ALTER's last step
            # can wait for a writer's transaction that itself waits for the metadata lock
            # behind the ALTER, a cycle neither lock's deadlock detection sees; this timeout
            # breaks it, and the ALTER is retried after a pause (db_errors.DDL). A batch's
            # row-lock wait is bounded too, and the batch retried (db_errors.BATCH).
            # Set either way: the pool may hand a DDL session's connection to the batches.
            conn.exec_driver_sql("SET SESSION lock_wait_timeout = %d, innodb_lock_wait_timeout = %s" % (
                self.ddl_lock_wait_timeout,
                min(self.ddl_lock_wait_timeout, DDL_INNODB_LOCK_WAIT_SECONDS) if ddl else BATCH_ROW_LOCK_WAIT))
            conn.commit()  # end the transaction the SET began; the caller begins its own
        return conn

    def clear_copy_leftovers(self):
        """Clear what a stopped shadow copy left (MySQL), before this run changes anything:
        an offline sync too, whose revisions would otherwise run under a copy's triggers."""
        if self.engine.dialect.name == "mysql":
            with self._begin() as conn:
                self.online_ddl.clear_copy_leftovers(conn)

    @property
    def table_copies(self):
        """The large tables rebuilt through a shadow copy so far (MySQL, online)."""
        return self.online_ddl.copy.copies if self.online_ddl.copy else []

    def apply_revision(self, revision_id, applied):
        """Apply one revision in its own transaction; return the new applied set."""
        with self._begin() as conn:
            with conn.begin():
                after = self._upgrade(conn, revision_id, applied)
        if self.online_ddl.resumed:
            self.warnings.append("%s had been partly applied by an interrupted run; finished it "
                                 "(already done: %s)." % (revision_id, "; ".join(self.online_ddl.resumed)))
            del self.online_ddl.resumed[:]
        return after

    def apply_revisions(self, revision_ids, applied):
        """Apply revisions in order; return the new applied set.

        Where DDL is transactional (PostgreSQL, SQLite) they share one
        transaction: one commit, so one disk flush, instead of one per revision,
        and a run stopped part-way leaves the database as it found it. MySQL
        commits each DDL statement anyway: one revision per transaction there,
        so alembic_version follows the schema as closely as it can.
        """
        applied = set(applied)
        if not revision_ids:
            return applied
        if self.engine.dialect.name == "mysql":
            for revision_id in revision_ids:
                applied = self.apply_revision(revision_id, applied)
            return applied
        with self._begin() as conn:
            with conn.begin():
                for revision_id in revision_ids:
                    applied = self._upgrade(conn, revision_id, applied, write_rows=False)
                # Nobody sees the rows in between: written once, for the last revision.
                write_version_rows(conn, GRAPH.rows_for(applied))
        return applied

    def _upgrade(self, conn, revision_id, applied, write_rows=True):
        """Run one revision's upgrade() (and write its alembic_version rows) on ``conn``."""
        stopping.check("before revision %s" % revision_id)
        self.progress.revision(revision_id)  # progress hook
        revision = GRAPH.get(revision_id)
        after = set(applied) | {revision_id}
        check = getattr(revision.script, "data_loss_check", None)
        problem = check(conn) if check else None
        if problem:
            raise DataLossRefused(
                "Contract refused before %s: %s. Run glance_db_migrate first; "
                "nothing was changed by this revision." % (revision_id, problem))
        context = MigrationContext.configure(conn, opts={ONLINE_OPTION: self.online})
        if conn.dialect.name == "mysql":
            self.online_ddl.install(context)
        with Operations.context(context), warnings.catch_warnings():
            # SQLite table rebuilds drop Liberty's unnamed CHECK constraints,
            # exactly as they do under real Glance (the parity dumps agree).
            warnings.filterwarnings("ignore", "Unnamed CHECK constraint")
            try:
                revision.script.upgrade()
                self.online_ddl.flush()  # a large table's copy queued by its last statements
            finally:
                self.online_ddl.discard()
        if write_rows:
            write_version_rows(conn, GRAPH.rows_for(after))
        return after

    def _batch(self, conn, step, after, limit):
        """One batch in its own transaction: (keys, rows migrated).

        A deadlock (on Galera also a batch that lost certification to the
        application's writes through another node) or a row-lock wait rolled
        the batch back: it runs again, with backoff, as Glance's API retries its
        own writes, and the progress says the run waits meanwhile.
        """
        def batch():
            with conn.begin():
                keys = step.next_keys(conn, after, limit)
                return keys, (step.apply(conn, keys) if keys else 0)
        with self.progress.lock_waits("a data migration batch") as on_retry:
            return with_backoff(batch, BATCH, self.sleep, on_retry=on_retry)

    def _begin_batches(self):
        conn = self._begin(ddl=False)
        # In REPEATABLE READ, InnoDB locks (with gap locks) every row a batch's
        # subquery reads, e.g. image_members, holding the application's inserts
        # there until the batch commits. READ COMMITTED reads them without locks;
        # each batch re-checks its WHERE on the rows it changes, so it stays correct.
        batches_read_committed(conn)
        return conn

    def run_data_migration(self, migration, batch_size, max_rows=None, rows_total=None):
        """Move a data migration's rows in batches; return rows migrated. ``rows_total``: the rows
        the plan counted, for the progress."""
        migrated = 0
        if rows_total is not None and max_rows is not None:
            rows_total = min(rows_total, max_rows)
        self.progress.step("data migration", migration.name, rows_total=rows_total)  # progress hook
        with self._begin_batches() as conn:
            pacing = for_connection(conn, batch_rows(batch_size, self.galera), self.galera, self.sleep)
            for step in migration.STEPS:
                after = None
                while max_rows is None or migrated < max_rows:
                    stopping.check("during data migration %s (%d rows migrated)" % (migration.name, migrated))
                    limit = pacing.batch_size if max_rows is None else min(pacing.batch_size, max_rows - migrated)
                    pacing.before()
                    started = time.monotonic()  # the pause below follows the batch's time, not the pacing's
                    keys, count = self._batch(conn, step, after, limit)
                    if not keys:
                        break
                    took = time.monotonic() - started
                    migrated += count
                    after = keys[-1]
                    pacing.after()
                    self.progress.rows(  # progress hook
                        migrated, None if rows_total is None else max(migrated, rows_total))
                    self.progress.throttled(pacing.reason)  # progress hook
                    if self.online and len(keys) == limit:  # more to come: let others in
                        pause_after_batch(took, self.sleep)
            if self.galera:  # off Galera there is nothing to report
                self.flow_control[migration.name] = record(pacing, migration.name, self.warnings.append)
        return migrated
