# -*- coding: utf-8 -*-
"""Purge soft-deleted rows, as ``glance-manage db purge`` / ``purge_images_table``.

Glance's rules: a row goes when its ``deleted_at`` is older than the age, the
oldest first, at most ``max_rows`` per table (-1: all); a purged task takes its
``task_info`` with it; ``images`` rows only when asked for (``images_table``),
because a purged image id could be given to a new image (OSSN-0075), which is
why Glance keeps them 180 days by default and apart from the other tables.

Where Glance fails or damages data this does better:

* Glance deletes ``images`` rows whose child rows (properties, tags, locations,
  members) are still there: a foreign-key error, on every engine (Glance 33's
  oslo.db enforces foreign keys on SQLite too; older ones left orphans there),
  and no image is purged. Here an image's child rows go with it, in the same
  transaction: without their image they are unreachable through the API.
* Glance picks ``task_info`` and ``tasks`` rows by two separate ``LIMIT``
  queries, which can disagree on ties (a foreign-key error again); here the
  tasks are chosen once and their ``task_info`` deleted in the same batch.
* Glance looks at ``deleted_at`` only; a row with ``deleted_at`` set but
  ``deleted`` false is live for the API and is kept here.

The work is done in key-ordered batches, each its own short transaction (READ
COMMITTED on MySQL/MariaDB where allowed: isolation.py) whose
row-lock waits are bounded (MySQL ``innodb_lock_wait_timeout`` and
``lock_wait_timeout``, PostgreSQL ``lock_timeout``) and retried with backoff,
so the API keeps serving while it runs.

While it runs it publishes its progress (progress.py, docs/progress.md): phase
``purge``, one step per table whose rows it chooses (``table 2 of 5,
image_tags``), that table's rows purged of those the plan counted.
"""

from __future__ import annotations

import datetime
import time

from .db_errors import PURGE_BATCH, with_backoff
from .deps import sa
from .errors import GlanceDbError
from .flow_control import Unpaced, batch_rows, for_connection, record
from .isolation import batches_read_committed
from .options import RunOptions
from .profile import ServerProfile
from . import progress as run_progress
from .state import on_connection, require_untouched_by_a_stopped_run

# Glance's order (models with a `deleted` column, images kept apart, tasks last).
IMAGE_CHILDREN = ("image_properties", "image_tags", "image_locations", "image_members")
PURGE_TABLES = ("task_info",) + IMAGE_CHILDREN + ("tasks",)
IMAGES_TABLE_TABLES = ("images",) + IMAGE_CHILDREN

DEFAULT_AGE = 30
DEFAULT_IMAGES_AGE = 180
DEFAULT_MAX_ROWS = 100
DEFAULT_BATCH_SIZE = 1000
DEFAULT_ROW_LOCK_WAIT_SECONDS = 5  # seconds a batch waits for a row lock before it is tried again
MAX_INT = 2 ** 31 - 1


class PurgeRefused(GlanceDbError):
    """The purge arguments are out of Glance's range, or the database is not Glance's."""


class PurgeInterrupted(GlanceDbError):
    """A batch kept waiting for row locks; the rows purged so far stay purged."""


def _soft_deleted(name):
    return sa.table(name, sa.column("id"), sa.column("deleted", sa.Boolean),
                    sa.column("deleted_at", sa.DateTime))


def _child(name):
    return sa.table(name, sa.column("id"), sa.column("image_id"))


def _task_info():
    return sa.table("task_info", sa.column("task_id"))


def validate(age_in_days, max_rows, now=None):
    """Refuse what glance-manage refuses, in its words."""
    now = now or time.time()
    if age_in_days < 0:
        raise PurgeRefused("Must supply a non-negative value for age (age_in_days: %d): give 0 days or more." % age_in_days)
    if age_in_days >= int(now) / 86400:
        raise PurgeRefused("Maximal age is count of days since epoch (age_in_days: %d): give a smaller age." % age_in_days)
    if max_rows < -1:
        raise PurgeRefused("Minimal rows limit is -1 (max_rows: %d; -1 purges every row old enough)."
                           % max_rows)
    if max_rows > MAX_INT:
        raise PurgeRefused("'max_rows' value out of range, must not exceed %d: give -1 to purge every row "
                           "old enough." % MAX_INT)


class Purge(object):
    """One purge: what it would delete (plan) and the deleting (run)."""

    def __init__(self, engine, age_in_days=None, max_rows=DEFAULT_MAX_ROWS, images_table=False,
                 batch_size=DEFAULT_BATCH_SIZE, lock_wait_timeout=DEFAULT_ROW_LOCK_WAIT_SECONDS, now=None, sleep=time.sleep):
        if age_in_days is None:
            age_in_days = DEFAULT_IMAGES_AGE if images_table else DEFAULT_AGE
        validate(age_in_days, max_rows)
        if batch_size < 1:
            raise PurgeRefused("batch_size must be at least 1 (got %d): give the rows per transaction, "
                               "1000 by default." % batch_size)
        self.engine = engine
        self.age_in_days = age_in_days
        self.max_rows = max_rows
        self.images_table = images_table
        self.batch_size = batch_size
        self.lock_wait_timeout = lock_wait_timeout
        self.sleep = sleep
        now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.cutoff = now - datetime.timedelta(days=age_in_days)
        self.tables = IMAGES_TABLE_TABLES if images_table else PURGE_TABLES
        # The parent tables whose rows are chosen; the others follow them or stand alone.
        self.parents = ("images",) if images_table else IMAGE_CHILDREN + ("tasks",)
        self.retries = 0
        self.pacing = Unpaced(batch_size)  # on Galera, the last run's: flow control met and backoffs
        self.profile = None  # profile.ServerProfile of the server, read with the state by plan()
        self.stopped_run_shown = False  # a stopped run's progress record stands (read by plan())

    # ---- choosing rows
    def _candidates(self, table, boundary):
        condition = sa.and_(table.c.deleted == sa.true(), table.c.deleted_at < self.cutoff)
        if boundary is not None:
            when, key = boundary
            condition = sa.and_(condition, sa.or_(
                table.c.deleted_at < when, sa.and_(table.c.deleted_at == when, table.c.id <= key)))
        return condition

    def _boundary(self, conn, table):
        """The newest (deleted_at, id) within max_rows, oldest first; None means no limit."""
        if self.max_rows == -1:
            return None
        if self.max_rows == 0:
            return False  # nothing at all
        row = conn.execute(
            sa.select(table.c.deleted_at, table.c.id).where(self._candidates(table, None))
            .order_by(table.c.deleted_at, table.c.id).offset(self.max_rows - 1).limit(1)).first()
        return None if row is None else (row[0], row[1])  # fewer rows than max_rows: all of them

    def _check_database(self, conn):
        names = set(sa.inspect(conn).get_table_names())
        missing = [t for t in self.tables if t not in names]
        if missing:
            raise PurgeRefused(
                "The database has no Glance table %s: it is empty or not a Glance database. "
                "Create it with glance_db_sync first, or point connection at the Glance database."
                % ", ".join(missing))
        return require_untouched_by_a_stopped_run(on_connection(conn))

    # ---- check mode
    def plan(self):
        """Rows per table that a run would delete now."""
        counts = dict((t, 0) for t in self.tables)
        with self.engine.connect() as conn:
            # The server's profile, read with the state: which lock run() takes.
            state = self._check_database(conn)
            self.profile = ServerProfile.of_state(state)
            self.stopped_run_shown = state.stopped_run_shown
            for name in self.parents:
                table = _soft_deleted(name)
                boundary = self._boundary(conn, table)
                if boundary is False:
                    continue
                chosen = sa.select(table.c.id).where(self._candidates(table, boundary))
                counts[name] = conn.execute(
                    sa.select(sa.func.count()).select_from(chosen.subquery())).scalar()
                for follower, column in self._followers(name):
                    counts[follower.name] = conn.execute(
                        sa.select(sa.func.count()).select_from(follower)
                        .where(column.in_(chosen))).scalar()
        return counts

    def old_rows(self):
        """Soft-deleted rows older than the age per table, whatever max_rows (the diff)."""
        counts = {}
        with self.engine.connect() as conn:
            self._check_database(conn)
            for name in self.parents:
                table = _soft_deleted(name)
                counts[name] = conn.execute(sa.select(sa.func.count()).select_from(table)
                                            .where(self._candidates(table, None))).scalar()
        return counts

    def _followers(self, name):
        """Rows deleted with a parent row: (table, its column holding the parent's id)."""
        if name == "tasks":
            task_info = _task_info()
            return [(task_info, task_info.c.task_id)]
        if name == "images":
            return [(child, child.c.image_id) for child in (_child(c) for c in IMAGE_CHILDREN)]
        return []

    # ---- deleting
    def run(self, progress=None, galera=False, planned=None):
        """Delete the rows; return rows deleted per table. ``galera``: back off under flow control.
        ``progress``: a progress.Progress the steps are reported to; ``planned``: plan()'s counts,
        the steps' totals (a table the plan found empty is no step)."""
        counts = dict((t, 0) for t in self.tables)
        progress = progress or run_progress.Progress()
        totals = planned or {}
        steps = [name for name in self.parents if planned is None or totals.get(name)]
        with self.engine.connect() as conn:
            self._check_database(conn)
            self._bound_lock_waits(conn)
            conn.commit()
            # No gap locks, no locks kept on rows that are not purged (isolation.py): a
            # batch that scans a whole small table would otherwise hold every row and gap
            # of it, and Glance's inserts there (a new image's tags, members, locations,
            # whose foreign-key check wants its image) deadlock with the batch.
            batches_read_committed(conn)
            # On Galera at most GALERA_BATCH_ROWS parents a batch, as the copy and data migration
            # batches: every other node applies a batch as one write set, its writers' commits behind it.
            pacing = self.pacing = for_connection(conn, batch_rows(self.batch_size, galera), galera, self.sleep)
            for name in self.parents:
                table = _soft_deleted(name)
                boundary = self._boundary(conn, table)
                conn.rollback()  # no snapshot or lock kept between batches
                if boundary is False:
                    continue
                step = name in steps
                if step:
                    progress.step("table", name, steps.index(name) + 1, len(steps), table=name,
                                  rows_total=totals.get(name))
                after = None
                while True:
                    query = sa.select(table.c.id).where(self._candidates(table, boundary))
                    if after is not None:
                        query = query.where(table.c.id > after)
                    pacing.before()
                    keys = [r[0] for r in conn.execute(query.order_by(table.c.id).limit(pacing.batch_size))]
                    conn.rollback()
                    if not keys:
                        break
                    done = self._delete_batch(conn, name, table, boundary, keys, counts, progress)
                    pacing.after()
                    for table_name, rows in done.items():
                        counts[table_name] += rows
                    if step:
                        total = totals.get(name)
                        progress.rows(counts[name], None if total is None else max(counts[name], total))
                        progress.throttled(pacing.reason)
                    after = keys[-1]
        return counts

    def _delete_batch(self, conn, name, table, boundary, keys, counts, progress):
        # Lock wait timeouts and deadlocks: the batch is rolled back and tried again.
        try:
            with progress.lock_waits("a purge batch") as say_throttled:
                return with_backoff(lambda: self._delete_once(conn, name, table, boundary, keys),
                                    PURGE_BATCH, self.sleep,
                                    on_retry=lambda *retry: self._count_retry(say_throttled, *retry))
        except sa.exc.OperationalError as exc:
            if PURGE_BATCH.retries_on(exc):
                raise PurgeInterrupted(
                    "Purge stopped: a batch of table %s waited for row locks held by other "
                    "transactions %d times (lock_wait_timeout %s s). Rows purged before it "
                    "stay purged (%s); run again when the load is lower, or raise "
                    "lock_wait_timeout." % (name, PURGE_BATCH.tries, self.lock_wait_timeout,
                                            _counts_text(counts)))
            raise

    def _count_retry(self, say_throttled, *retry):
        self.retries += 1
        say_throttled(*retry)  # until the batch goes through

    def _delete_once(self, conn, name, table, boundary, keys):
        with conn.begin():
            done = {}
            followers = self._followers(name)
            if followers:
                # The parents still to purge (the condition repeated: a row changed
                # meanwhile is left alone), locked, then named literally: MariaDB runs a
                # DELETE's IN (subquery) once per row of the table.
                keys = [r[0] for r in conn.execute(
                    sa.select(table.c.id).where(sa.and_(
                        table.c.id.in_(keys), self._candidates(table, boundary)))
                    .with_for_update())]
                if not keys:
                    return done
                for follower, column in followers:
                    done[follower.name] = conn.execute(
                        sa.delete(follower).where(column.in_(keys))).rowcount
            done[name] = conn.execute(
                sa.delete(table).where(sa.and_(table.c.id.in_(keys),
                                               self._candidates(table, boundary)))).rowcount
        return done

    def _bound_lock_waits(self, conn):
        seconds = max(1, int(self.lock_wait_timeout))
        dialect = conn.dialect.name
        if dialect == "mysql":
            conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = %d, lock_wait_timeout = %d"
                                 % (seconds, seconds))
        elif dialect == "postgresql":
            conn.exec_driver_sql("SET lock_timeout = '%ds'" % seconds)


def _counts_text(counts):
    return ", ".join("%s: %d" % (t, n) for t, n in counts.items())


def message(counts, age_in_days, check_mode=False):
    """A summary in glance-manage's log words ("Deleted N row(s) from table T")."""
    verb = "Would delete" if check_mode else "Deleted"
    parts = ["%s %d row(s) from table %s" % (verb, n, t) for t, n in counts.items()]
    return "Purging deleted rows older than %d day(s): %s." % (age_in_days, "; ".join(parts))


def run(job, options=None, check_mode=False, diff=False, warn=None):
    """Plan (check mode) or purge under the migration lock; the module's result.

    ``options``: the run's options.RunOptions (the lock's are used).

    ``warn``: called with the warning of a run that backed off under Galera flow control, or
    whose progress could not be published."""
    before = job.old_rows() if diff else None
    warn = warn or (lambda line: None)
    planned = job.plan()
    if check_mode:
        counts = planned
    elif not any(planned.values()) and not job.stopped_run_shown:
        counts = dict((t, 0) for t in job.tables)  # nothing to do: not even the lock
    else:
        # The lock keeps a purge out of a schema upgrade's way (and two purges apart):
        # the phases' lock, with the same options (profile.py), on the server plan() read.
        # The progress is published under it, so the facts judge it as a phase's.
        options = options or RunOptions()
        progress = run_progress.for_server(job.engine, job.profile, options)
        with job.profile.migration_lock(job.engine, options) as holder, progress.running("purge", holder):
            counts = job.run(progress, galera=job.profile.on_galera, planned=planned)
        for warning in progress.warnings:
            warn(warning)
    total = sum(counts.values())
    result = dict(changed=total > 0, rows=counts, total=total, age_in_days=job.age_in_days,
                  msg=message(counts, job.age_in_days, check_mode))
    flow = record(job.pacing, "the purge", warn)
    if flow is not None:  # on Galera
        result["flow_control"] = flow
    if diff:
        after = job.old_rows() if not check_mode else _minus(before, counts)
        result["diff"] = dict(before=_old_rows_text(before, job), after=_old_rows_text(after, job))
    return result


def _minus(before, counts):
    return dict((t, n - counts.get(t, 0)) for t, n in before.items())


def _old_rows_text(counts, job):
    return "".join("%s: %d soft-deleted row(s) older than %d day(s)\n" % (t, n, job.age_in_days)
                   for t, n in counts.items())
