# -*- coding: utf-8 -*-
"""A short measured sample of a shadow copy on this server, for the estimates (estimates.py).

A few thousand of the table's rows, in key order, are copied in the copier's batches and
with its statements (copier.batch_end, copier.copy_statement) into a temporary table
created as the copy is (inspector.create_copy); each repeat is timed. Nobody else sees it:

- a temporary table is its session's own, and goes with the session: the sample's
  connection is closed at the end, whatever happened;
- Galera does not replicate it: a statement on temporary tables only is kept out of Total
  Order Isolation (MariaDB's sql/wsrep_mysqld.cc, wsrep_can_run_in_toi), and writes to a
  temporary table make no row events, so no write set (as with ROW binary logging, which
  Galera requires: MySQL manual, "Replication and Temporary Tables"). On the test cluster a
  check mode leaves the node's wsrep_last_committed where it was (test_galera_estimates.py).

What it holds on the table: no row lock (READ COMMITTED, no LOCK IN SHARE MODE: InnoDB
reads the source of an INSERT ... SELECT as a consistent read), only the shared metadata
lock of each batch's short transaction, which Glance's reads and writes share; a DDL waits
for one batch at most. It is bounded in time: each statement by max_statement_time
(MariaDB), a wait for a metadata lock by lock_wait_timeout, and no repeat starts after
CAP_SECONDS. Where it cannot be taken, SampleUnavailable says why, and the estimates use
their fixed rates.
"""

from __future__ import annotations

import time

from ..db_errors import DB_ACCESS_DENIED, TABLE_ACCESS_DENIED, code_of
from . import inspector
from .copier import batch_end, copy_statement

# Rows per repeat: repeats of 2,000 rows varied 1.8 times from one sample to the next on a
# loaded 2-core server, of 5,000 rows 1.2 times; 15,000 rows take about 0.2 s there.
SAMPLE_ROWS = 5000
REPEATS = 3  # their spread is the sample's own uncertainty
CAP_SECONDS = 2.0
TEMPORARY = "_glance_sample_%s"


class SampleUnavailable(Exception):
    """No sample could be taken; the message says why."""


def copy_rates(engine, table, batch_rows, rows=SAMPLE_ROWS, repeats=REPEATS, cap=CAP_SECONDS):
    """The rows per second of the copier's batches of ``table`` on this server (batch time only,
    no pauses), one per repeat of ``rows`` rows in batches of ``batch_rows``."""
    try:
        with engine.connect() as conn:
            try:
                return _sample(conn, table, batch_rows, rows, repeats, cap)
            finally:
                conn.invalidate()  # the session ends: its temporary table and settings go with it
    except SampleUnavailable:
        raise
    except Exception as exc:  # pylint: disable=broad-except  # a refusal, a timeout: no sample
        raise SampleUnavailable(_reason(exc))


def _sample(conn, table, batch_rows, rows, repeats, cap):
    started = time.monotonic()
    for setting in ("max_statement_time = %s" % cap, "lock_wait_timeout = %d" % max(1, round(cap)),
                    "TRANSACTION ISOLATION LEVEL READ COMMITTED"):
        conn.exec_driver_sql("SET SESSION " + setting)
    key = inspector.primary_key(conn, table)
    if len(key) != 1:
        raise SampleUnavailable("table %s has no one-column primary key" % table)
    key, columns, temporary = key[0], inspector.columns(conn, table), TEMPORARY % table
    conn.exec_driver_sql(inspector.create_copy(conn, table, temporary).replace(
        "CREATE TABLE", "CREATE TEMPORARY TABLE", 1))
    upper = inspector.scalar(conn, "SELECT MAX(`%s`) FROM `%s`" % (key, table))
    conn.commit()
    rates, after = [], None
    while len(rates) < repeats and (not rates or time.monotonic() - started < cap):
        copied, took = 0, 0.0
        while copied < rows:
            if time.monotonic() - started > cap and not rates:
                raise SampleUnavailable("%d rows of %s took more than %s s" % (copied, table, cap))
            where, params = "`%s` <= %%s" % key, [upper]
            if after is not None:
                where, params = where + " AND `%s` > %%s" % key, params + [after]
            began = time.monotonic()
            last = batch_end(conn, table, key, where, params, batch_rows)
            if last is None:  # fewer rows left than a batch: the sample ends with the repeats taken
                conn.rollback()
                return _taken(rates, table, rows)
            copied += conn.exec_driver_sql(copy_statement(table, temporary, columns, key, where + " AND `%s` <= %%s"
                                                          % key, share_lock=False), tuple(params + [last])).rowcount
            conn.commit()
            took += time.monotonic() - began
            after = last
        rates.append(copied / took)
    return rates


def _reason(exc):
    """The server's words for why the sample failed, with a hint where the fix is a grant."""
    original = getattr(exc, "orig", exc)
    if code_of(exc) is None:
        return str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    text = "%s (error %d)" % (original.args[-1], code_of(exc))
    if code_of(exc) in (DB_ACCESS_DENIED, TABLE_ACCESS_DENIED):
        text += "; grant the user CREATE TEMPORARY TABLES on the database for sampled estimates"
    return text


def _taken(rates, table, rows):
    if not rates:
        raise SampleUnavailable("table %s has fewer than %d rows to sample" % (table, rows))
    return rates
