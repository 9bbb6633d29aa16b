# -*- coding: utf-8 -*-
"""Run a MySQL statement again after a lock wait timeout or a deadlock, with backoff.

Shared by the online DDL (mysql_online), the data migration batches (runner) and the
shadow-table copy (table_copy); on Galera a deadlock (1213) is also a transaction that
lost certification to a write through another node.
"""

from __future__ import annotations

from .deps import sa

LOCK_WAIT_TIMEOUT = 1205  # ER_LOCK_WAIT_TIMEOUT: gave up waiting for a metadata lock
DEADLOCK = 1213
RETRIES = 6
FIRST_BACKOFF_SECONDS = 0.5


def error_code(exc):
    """The MySQL error number of a SQLAlchemy DBAPIError, or None."""
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", None)
    return args[0] if args else None


def with_backoff(statement, retry_on, sleep):
    """Run ``statement()``; when it fails with a MySQL error in ``retry_on``, wait
    (FIRST_BACKOFF_SECONDS, doubling) and run it again, RETRIES times at most."""
    delay = FIRST_BACKOFF_SECONDS
    for attempt in range(RETRIES + 1):
        try:
            return statement()
        except sa.exc.OperationalError as exc:
            if error_code(exc) not in retry_on or attempt == RETRIES:
                raise
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
