# -*- coding: utf-8 -*-
"""How long a shadow copy or a data migration is expected to take, before it runs.

From the server's statistics alone (check mode must stay cheap and write nothing):
the rows the plan already knows (a copy: InnoDB's estimate of the table's rows; a
data migration: the rows counted as pending) at a rate measured on our test
servers, the batches' pauses included. The rate moves with the server (disk,
buffer pool, load) and with the table's indexes, so each estimate comes as a range:
half to twice the expected time. The run's result gives the real seconds beside it
(table_copies' ``seconds``, data_migrations' ``seconds``).
"""

from __future__ import annotations

# Rows per second, measured on 2 shared cores (docs/rolling-upgrade.md, "Estimates"):
# one MariaDB server, 50,000 images: copies of images 7,200 to 17,800 rows/s (more
# indexes, slower), the data migrations 9,000 rows/s; the 3-node Galera cluster,
# 1,000,000 images: three copies in 1,062 s, about 2,800 rows/s; 50,000 and 200,000
# images: the data migrations (batches of 250 rows) 1,700 to 6,200 rows/s.
COPY_ROWS_PER_SECOND = 10000
GALERA_COPY_ROWS_PER_SECOND = 2800
MIGRATION_ROWS_PER_SECOND = 9000
GALERA_MIGRATION_ROWS_PER_SECOND = 4000
LOW, HIGH = 0.5, 2.0  # the range stated with each estimate


def duration(rows, rate):
    """The estimate of ``rows`` at ``rate`` rows/s: expected seconds, with its range; None where
    the rows are not known."""
    if rows is None:
        return None
    seconds = float(rows) / rate
    return {"seconds": round(seconds, 1), "low": round(seconds * LOW, 1), "high": round(seconds * HIGH, 1),
            "basis": "%d rows at %d rows/s (measured on test servers); the real time may be half to twice "
                     "this" % (rows, rate)}


def copy_duration(rows, galera):
    return duration(rows, GALERA_COPY_ROWS_PER_SECOND if galera else COPY_ROWS_PER_SECOND)


def migration_duration(rows, galera):
    return duration(rows, GALERA_MIGRATION_ROWS_PER_SECOND if galera else MIGRATION_ROWS_PER_SECOND)
