# -*- coding: utf-8 -*-
"""The isolation level of our batches' transactions on MySQL/MariaDB, decided once.

In REPEATABLE READ, the default, InnoDB keeps a lock on every row a statement
scans, matching its WHERE or not, and on the gap before it (next-key locks) until
the transaction ends: the application's inserts into those gaps wait, and a write
that meets one while holding a lock the batch wants (a new row's foreign-key check
on its image, say) is a deadlock, error 1213, which Glance's API retries for a few
calls only. READ COMMITTED takes no gap locks (but for duplicate-key and
foreign-key checks) and lets go of the rows that do not match at once. An UPDATE,
DELETE or locking read that meets a row another transaction holds still waits for
it and evaluates its WHERE on the row as that transaction left it, so a batch that
repeats its condition in its writes never changes a row that stopped matching.
"""

from __future__ import annotations


def read_committed_allowed(conn):
    """Statement-based binary logging refuses READ COMMITTED writes on InnoDB."""
    log_bin, binlog_format = conn.exec_driver_sql("SELECT @@log_bin, @@binlog_format").one()
    conn.commit()
    return not log_bin or str(binlog_format).upper() != "STATEMENT"


def batches_read_committed(conn):
    """Run the transactions of ``conn`` (a SQLAlchemy Connection outside a transaction)
    in READ COMMITTED on MySQL/MariaDB where the server allows it; return whether they
    do. The pool restores the server's default when ``conn`` is closed."""
    if conn.dialect.name != "mysql" or not read_committed_allowed(conn):
        return False
    conn.execution_options(isolation_level="READ COMMITTED")
    return True
