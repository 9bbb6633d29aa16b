# -*- coding: utf-8 -*-
"""Batches that back off when the Galera cluster reports flow control.

A Galera node whose apply queue grows past ``gcs.fc_limit`` sends flow control,
and then no node of the cluster commits until it has caught up: the
application's writers wait as well. Batches that keep coming keep the queue full.
So, after each batch, the node's paused time is read
(``wsrep_flow_control_paused_ns``, cumulative); when the cluster was paused for
more than ``PAUSED_SHARE`` of the batch's cycle (from the previous batch's end:
the pause after a batch included, where a short pause can begin and end
unseen by the batch itself), the next batch waits until the
pause is over (polling, at most ``MAX_WAIT_SECONDS``: a run always goes on) and
is half as large (a shorter write set for the slow node to apply, and less for
the application's writes to queue behind), down to a sixteenth; each clean batch
doubles it back.

Only on a Galera node: elsewhere nothing is read and nothing changes. There, too,
data migration and copy batches are at most GALERA_BATCH_ROWS rows (batch_rows()).
"""

from __future__ import annotations

import time

PAUSED_SHARE = 0.1
POLL_SECONDS = 0.2
MAX_WAIT_SECONDS = 5.0
SMALLEST_SHARE = 16  # batches shrink to batch_size / 16 at most
# On Galera every other node applies each batch as one write set, in commit order, and
# its own writers' commits wait behind it: smaller batches, shorter waits. With real
# Glance writing through all three nodes at 50,000 images (benchmarks/migrate_pacing.py),
# the worst call type's p99 during migrate was 3.7-11 times the quiet one with data
# migration batches of 5,000 rows, 2.0-4.1 with 1,000, 0.6-2.6 with 250, for a migrate
# about twice as long; 100 rows, or a pause three times as long, did no better. The
# copy's figures: docs/galera.md, "Batches on the cluster".
GALERA_BATCH_ROWS = 250
# After each online batch (data migration, table copy), pause for this share of the
# time it took (at least the minimum): the application's writes and the server's
# flushing catch up, so they do not queue behind a long stream of batches.
ONLINE_BATCH_PAUSE_RATIO = 1.0
ONLINE_BATCH_PAUSE_MIN_SECONDS = 0.02

# wsrep_sync_wait off for this statement: a causal read would wait on the cluster
# it is meant to watch. The fraction and Uptime_since_flush_status are the fallback
# for providers without the _ns counter.
_STATUS = ("SET STATEMENT wsrep_sync_wait = 0 FOR SHOW GLOBAL STATUS WHERE Variable_name IN "
           "('wsrep_flow_control_paused_ns', 'wsrep_flow_control_paused', 'wsrep_flow_control_recv', "
           "'Uptime_since_flush_status')")


def pause_seconds(took):
    """The pause after an online batch that took ``took`` seconds (what estimates.py counts too)."""
    return max(ONLINE_BATCH_PAUSE_MIN_SECONDS, ONLINE_BATCH_PAUSE_RATIO * took)


def batch_rows(batch_size, galera):
    """The rows a batch asked ``batch_size`` rows takes: on a Galera node at most GALERA_BATCH_ROWS."""
    return min(batch_size, GALERA_BATCH_ROWS) if galera else batch_size


def pause_after_batch(took, sleep=time.sleep):
    """Wait after an online batch that took ``took`` seconds, before the next one."""
    sleep(pause_seconds(took))


def paused_seconds(status):
    """Seconds the node has been paused by flow control, from SHOW STATUS rows (name -> value)."""
    status = dict((name.lower(), value) for name, value in status.items())
    if status.get("wsrep_flow_control_paused_ns") not in (None, ""):
        return int(status["wsrep_flow_control_paused_ns"]) / 1e9
    # Older providers: the share of the time since FLUSH STATUS.
    return float(status.get("wsrep_flow_control_paused") or 0) * float(status.get("uptime_since_flush_status") or 0)


def read_status(conn):
    """(paused seconds, flow control messages received) of the node behind ``conn``."""
    rows = dict((name.lower(), value) for name, value in conn.exec_driver_sql(_STATUS).fetchall())
    conn.rollback()  # SQLAlchemy began a transaction; the next batch begins its own
    return paused_seconds(rows), int(rows.get("wsrep_flow_control_recv") or 0)


class FlowControl(object):
    """Paces one run of batches on a Galera node: ``before()`` and ``after()`` each batch."""

    def __init__(self, read, batch_size, sleep=time.sleep, clock=time.monotonic):
        self.read = read
        self.full = batch_size
        self.batch_size = batch_size
        self.sleep = sleep
        self.clock = clock
        self.backoffs = 0
        self.waited = 0.0
        self.smallest = batch_size
        self._first = self._last = None  # (clock, paused seconds, messages received)

    def _sample(self):
        paused, received = self.read()
        return self.clock(), paused, received

    def before(self):
        """Read the counters as the first batch starts; each later batch's cycle starts where
        the previous one's ended, so a pause while the caller slept between batches counts
        too (in one loaded CI run the cluster was paused 2.4 s and no batch's own time saw it)."""
        if self._last is None:
            self._last = self._first = self._sample()

    def after(self):
        """Read them as it ended; back off when the cluster was paused. Returns the next batch's size."""
        started, paused_before = self._last[:2]
        self._last = self._sample()
        now, paused = self._last[:2]
        share = (paused - paused_before) / (now - started) if now > started else 0.0
        if share <= PAUSED_SHARE:
            self.batch_size = min(self.full, self.batch_size * 2)
            return self.batch_size
        self.backoffs += 1
        self.batch_size = max(1, self.full // SMALLEST_SHARE, self.batch_size // 2)
        self.smallest = min(self.smallest, self.batch_size)
        waiting = now
        while now - waiting < MAX_WAIT_SECONDS:
            self.sleep(POLL_SECONDS)
            previous = paused
            self._last = self._sample()
            now, paused = self._last[:2]
            if paused - previous <= PAUSED_SHARE * POLL_SECONDS:
                break  # a poll without pause: the slow node caught up
        self.waited += now - waiting
        return self.batch_size

    @property
    def reason(self):
        """Why the batches are smaller than asked, for the progress; None at full size."""
        return "Galera flow control" if self.batch_size < self.full else None

    def result(self):
        """What the run met and did, for the module's result."""
        first, last = self._first, self._last
        return {
            "batch_rows": self.full,
            "backoffs": self.backoffs,
            "waited_seconds": round(self.waited, 2),
            "paused_seconds": round(last[1] - first[1], 2) if first else 0.0,
            "messages_received": last[2] - first[2] if first else 0,
            "smallest_batch": self.smallest,
        }

    def warning(self, what):
        """A line for the run's warnings when it backed off, else None."""
        if not self.backoffs:
            return None
        figures = (what, self.result()["paused_seconds"], self.backoffs, self.waited, self.smallest)
        return ("Galera flow control paused the cluster during %s (%.1f s in all): the batches backed off "
                "%d time(s), waited %.1f s and shrank to %d rows at the smallest, to let the slow node catch "
                "up. A node that often sends flow control is slower than the others: check it." % figures)


class Unpaced(object):
    """Off Galera: the batches keep their size, nothing is read."""

    reason = None

    def __init__(self, batch_size):
        self.batch_size = batch_size

    def before(self):
        pass

    def after(self):
        return self.batch_size

    def result(self):
        return None

    def warning(self, what):
        return None


def record(pacing, what, warn):
    """``pacing``'s result for the module (None off Galera); its warning, if it backed off, goes to ``warn``."""
    warning = pacing.warning(what)
    if warning:
        warn(warning)
    return pacing.result()


def for_connection(conn, batch_size, galera, sleep=time.sleep):
    """A FlowControl reading ``conn``'s node on a Galera node, else Unpaced."""
    if not galera:
        return Unpaced(batch_size)
    return FlowControl(lambda: read_status(conn), batch_size, sleep=sleep)
