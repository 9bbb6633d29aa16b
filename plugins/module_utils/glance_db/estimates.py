# -*- coding: utf-8 -*-
"""How long a shadow copy or a data migration is expected to take, before it runs.

Each estimate gives ``seconds``, a range ``low`` to ``high``, and its ``basis``, one of two:

- sampled (MySQL/MariaDB, in check mode and in the run's own plan): the table's rows copied
  on this server a few thousand at a time, three times, as the copier copies them, into a
  temporary table (online/sample.py). Scaled to the step's rows (a copy: InnoDB's estimate
  of the table's rows; a data migration: the rows counted as pending), in the run's batches,
  with the pause the run makes after each (flow_control.pause_seconds). A step does not run
  at the sample's rate, and the shares it does run at were measured on our test servers
  (the SHARE constants below). The range is the repeats' spread, widened by SAMPLE_MARGIN
  each way for what a short sample cannot see: the buffer pool once the table outgrows it,
  the indexes earlier revisions add before a later copy, the server's load meanwhile.
- fixed: where no sample is taken (PostgreSQL, SQLite, a user without CREATE TEMPORARY TABLES,
  a step of fewer rows than a sample, a sample's error or time cap: the basis says which), a
  rate measured on our test servers, with a range of half to twice.

Data migrations take the copy's sample of their table rather than a timed read of their own
SELECT: their time goes to their writes (undo, redo, the changed index entries), which a read
does not see and the sample's INSERT does; and before expand the columns their SELECT
reads do not exist yet. The run's result gives the real seconds beside each estimate
(table_copies' ``seconds``, data_migrations' ``seconds``).
"""

from __future__ import annotations

import statistics

from .flow_control import GALERA_BATCH_ROWS, pause_seconds
from .online import BATCH_ROWS
from .online.sample import CAP_SECONDS, SAMPLE_ROWS, SampleUnavailable, copy_rates

# Fixed rates, rows per second, measured on 2 shared cores (docs/rolling-upgrade.md, "Estimates"):
# one MariaDB server, 50,000 images: copies of images 7,200 to 17,800 rows/s (more indexes,
# slower), the data migrations 9,000 rows/s; the 3-node Galera cluster, 1,000,000 images: three
# copies in 1,062 s, about 2,800 rows/s; 50,000 and 200,000 images: the data migrations (batches of
# 250 rows) 1,700 to 6,200 rows/s.
COPY_ROWS_PER_SECOND = 10000
GALERA_COPY_ROWS_PER_SECOND = 2800
MIGRATION_ROWS_PER_SECOND = 9000
GALERA_MIGRATION_ROWS_PER_SECOND = 4000
LOW, HIGH = 0.5, 2.0  # the range stated with each fixed-rate estimate

# The share of the sample's rate (its batches' time, no pauses) a step runs at, measured on
# one MariaDB server at 50,000 images, narrow and full rows (benchmarks/estimate_accuracy.py;
# docs/rolling-upgrade.md, "Estimates"). A copy: the real table writes its redo log and
# share-locks the rows it reads, a temporary table does neither. A data migration: each batch
# selects its keys, then updates them, Ocata's looking up each image's members; its cost
# follows the row's width less than a copy's does (0.35 on narrow rows, 0.65 on full ones).
COPY_SHARE = 0.6
MIGRATION_SHARE = {"ocata_migrate01_community_images": 0.45, "train_migrate01_backend_to_store": 0.5}
OTHER_MIGRATION_SHARE = 0.45  # one not measured: the slowest measured
# On Galera each batch is also replicated and certified, which a sample on one node does not
# see. The 3-node test cluster's expand at 200,000 images in batches of 250 took 86 s
# (benchmarks/results/rolling_galera.md), where this model gives about 65 s for one server:
# about 0.75. Checked on that cluster at 50,000 images, twice: each copy estimated at 6.2 s ran
# 6.7 to 7.8 s (the fixed rate said 17.9 s). Two runs only: a wider margin.
GALERA_SHARE = 0.75
SAMPLE_MARGIN, GALERA_SAMPLE_MARGIN = 1.75, 2.5


def _estimate(seconds, low, high, basis):
    return {"seconds": round(seconds, 1), "low": round(low, 1), "high": round(high, 1), "basis": basis}


def duration(rows, rate, why=None):
    """The fixed-rate estimate of ``rows`` at ``rate`` rows/s; None where the rows are not known.
    ``why``: the reason no sample was taken, if one was tried."""
    if rows is None:
        return None
    seconds = float(rows) / rate
    basis = ("fixed rate measured on test servers: %d rows at %d rows/s; the real time may be half to twice "
             "this" % (rows, rate))
    return _estimate(seconds, seconds * LOW, seconds * HIGH, basis + (" (no sample: %s)" % why if why else ""))


def copy_duration(rows, galera, why=None):
    return duration(rows, GALERA_COPY_ROWS_PER_SECOND if galera else COPY_ROWS_PER_SECOND, why)


def migration_duration(rows, galera, why=None):
    return duration(rows, GALERA_MIGRATION_ROWS_PER_SECOND if galera else MIGRATION_ROWS_PER_SECOND, why)


def migration_table(migration):
    """The table a data migration's rows are in: the one its sample is of."""
    return migration.STEPS[0].table


class Rates(object):
    """How a plan's steps are estimated: from a sample of each table taken (sample()), else at
    the fixed rates."""

    def __init__(self, galera=False, online=True, migration_batch_rows=5000):
        self.galera = galera
        self.online = online  # an online run pauses after each batch
        self.copy_batch_rows = GALERA_BATCH_ROWS if galera else BATCH_ROWS
        self.migration_batch_rows = migration_batch_rows
        self.samples = {}  # table -> the sample's rows/s, one per repeat (online/sample.py)
        self.unsampled = {}  # table -> why no sample was taken

    def sample(self, engine, moved):
        """Sample on ``engine``'s server (MySQL/MariaDB) each table of ``moved`` (table -> the most
        rows a step moves in it) where a step moves a sample's rows or more: a smaller step is
        quick, and check mode stays as cheap as it was for it."""
        tables = sorted(table for table, rows in moved.items() if rows >= SAMPLE_ROWS)
        for table in set(moved) - set(tables):
            self.unsampled[table] = "%d rows to move, fewer than a sample's %d" % (moved[table], SAMPLE_ROWS)
        for table in tables:
            try:  # CAP_SECONDS for the whole plan
                self.samples[table] = copy_rates(engine, table, self.copy_batch_rows, cap=CAP_SECONDS / len(tables))
            except SampleUnavailable as exc:
                self.unsampled[table] = str(exc)

    def copy(self, table, rows):
        if rows is None or table not in self.samples:
            return copy_duration(rows, self.galera, self.unsampled.get(table))
        return self._sampled(table, rows, COPY_SHARE, self.copy_batch_rows, "a copy runs")

    def migration(self, migration, rows):
        table = migration_table(migration)
        if rows is None or table not in self.samples:
            return migration_duration(rows, self.galera, self.unsampled.get(table))
        share = MIGRATION_SHARE.get(migration.name, OTHER_MIGRATION_SHARE)
        return self._sampled(table, rows, share, self.migration_batch_rows, "this data migration runs")

    def _sampled(self, table, rows, share, batch_rows, what):
        rates = self.samples[table]
        margin = GALERA_SAMPLE_MARGIN if self.galera else SAMPLE_MARGIN
        cluster = GALERA_SHARE if self.galera else 1.0
        seconds = [self._seconds(rows, rate * share * cluster, batch_rows)
                   for rate in (statistics.median(rates), max(rates) * margin, min(rates) / margin)]
        basis = ("sampled on this server: %d rows of %s copied in %.2f s (%d repeats, %d to %d rows/s); %s at "
                 "%.2g of that%s, in batches of %d%s. The range: the repeats' spread, widened %g times for what "
                 "a short sample cannot see (buffer pool, indexes added by earlier revisions, load)" % (
                     SAMPLE_ROWS * len(rates), table, sum(SAMPLE_ROWS / rate for rate in rates), len(rates),
                     min(rates), max(rates), what, share,
                     ", times %.2g for the Galera cluster's replication (not sampled)" % cluster if self.galera else "",
                     batch_rows, " with the run's pauses" if self.online else "", margin))
        return _estimate(seconds[0], seconds[1], seconds[2], basis)

    def _seconds(self, rows, rate, batch_rows):
        batches = -(-rows // batch_rows)
        pauses = batches * pause_seconds(min(rows, batch_rows) / rate) if self.online else 0.0
        return rows / rate + pauses
