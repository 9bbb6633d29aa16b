"""How batches pace themselves under Galera flow control (flow_control.py), on a fake clock."""

from __future__ import annotations

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import flow_control
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.flow_control import (
    GALERA_BATCH_ROWS, MAX_WAIT_SECONDS, POLL_SECONDS, FlowControl, Unpaced, batch_rows, paused_seconds,
)


class Cluster(object):
    """A node's flow-control counter on a fake clock: paused while ``paused_until`` is ahead."""

    def __init__(self):
        self.now = 0.0
        self.paused = 0.0
        self.paused_until = 0.0
        self.reads = 0

    def advance(self, seconds):
        paused_for = max(0.0, min(self.now + seconds, self.paused_until) - self.now)
        self.paused += paused_for
        self.now += seconds

    def read(self):
        self.reads += 1
        return self.paused, int(self.paused * 10)

    def pacer(self, batch_size):
        return FlowControl(self.read, batch_size, sleep=self.advance, clock=lambda: self.now)


def test_clean_batches_keep_their_size_and_never_wait():
    cluster = Cluster()
    pacing = cluster.pacer(1000)
    for _batch in range(5):
        pacing.before()
        cluster.advance(0.1)
        assert pacing.after() == 1000
    assert pacing.result() == {"batch_rows": 1000, "backoffs": 0, "waited_seconds": 0.0, "paused_seconds": 0.0,
                               "messages_received": 0, "smallest_batch": 1000}
    assert pacing.reason is None
    assert pacing.warning("m") is None
    assert cluster.now == 0.5  # no sleep at all


def test_a_paused_batch_waits_for_the_pause_to_end_and_halves_the_next_one():
    cluster = Cluster()
    pacing = cluster.pacer(1000)
    pacing.before()
    cluster.paused_until = 1.0  # paused from now for 1 s
    cluster.advance(0.2)  # the whole batch was paused
    assert pacing.after() == 500
    # It waited, polling, until a poll found no more pause: just past the pause's end.
    assert 1.0 <= cluster.now <= 1.0 + 2 * POLL_SECONDS
    assert pacing.backoffs == 1 and pacing.smallest == 500
    assert pacing.reason == "Galera flow control"  # the progress says why, until the size is back
    # Clean batches grow it back, doubling, to the size asked for, never above.
    sizes = []
    for _batch in range(3):
        pacing.before()
        cluster.advance(0.1)
        sizes.append(pacing.after())
    assert sizes == [1000, 1000, 1000] and pacing.reason is None
    result = pacing.result()
    assert result["backoffs"] == 1 and result["paused_seconds"] == 1.0 and result["messages_received"] == 10
    assert 0.8 <= result["waited_seconds"] <= 1.2
    assert "backed off 1 time(s)" in pacing.warning("ocata_migrate01_community_images")


def test_the_wait_is_bounded_and_batches_shrink_to_a_sixteenth():
    cluster = Cluster()
    cluster.paused_until = 1000.0  # a cluster paused for good: the run still goes on
    pacing = cluster.pacer(1000)
    sizes = []
    for _batch in range(8):
        pacing.before()
        cluster.advance(0.1)
        sizes.append(pacing.after())
    assert sizes == [500, 250, 125, 62, 62, 62, 62, 62]
    assert pacing.backoffs == 8
    assert abs(pacing.waited - 8 * MAX_WAIT_SECONDS) < 8 * POLL_SECONDS


def test_a_pause_between_batches_counts_for_the_next_one():
    cluster = Cluster()
    pacing = cluster.pacer(1000)
    pacing.before()
    cluster.advance(0.1)
    assert pacing.after() == 1000
    cluster.paused_until = cluster.now + 0.3  # paused while the caller slept after the batch,
    cluster.advance(0.5)  # and over before the next batch began
    pacing.before()
    cluster.advance(0.1)
    assert pacing.after() == 500 and pacing.backoffs == 1
    assert cluster.reads == 4  # before the first batch, after each, and one poll of the wait


def test_a_short_pause_below_the_threshold_is_no_backoff():
    cluster = Cluster()
    pacing = cluster.pacer(100)
    pacing.before()
    cluster.paused_until = 0.005
    cluster.advance(0.1)  # paused 5 % of the batch
    assert pacing.after() == 100 and pacing.backoffs == 0


def test_the_paused_time_from_the_ns_counter_or_the_older_fraction():
    assert paused_seconds({"wsrep_flow_control_paused_ns": "2500000000", "wsrep_flow_control_paused": "0.5",
                           "Uptime_since_flush_status": "100"}) == 2.5
    # A provider without the _ns counter: its share of the time since FLUSH STATUS.
    assert paused_seconds({"wsrep_flow_control_paused": "0.25", "Uptime_since_flush_status": "10"}) == 2.5


def test_off_galera_nothing_is_read():
    pacing = flow_control.for_connection(object(), 700, galera=False)
    assert isinstance(pacing, Unpaced)
    pacing.before()
    assert pacing.after() == 700 and pacing.batch_size == 700
    assert pacing.result() is None and pacing.warning("m") is None and pacing.reason is None


def test_on_galera_batches_are_at_most_galera_batch_rows():
    assert batch_rows(5000, galera=True) == GALERA_BATCH_ROWS == 250
    assert batch_rows(100, galera=True) == 100  # a smaller batch_size stays
    assert batch_rows(5000, galera=False) == 5000
