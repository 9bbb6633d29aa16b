"""Sampled estimates on the 3-node cluster (estimates.py, online/sample.py): check mode through
node 1 samples images in Galera's 250-row batches, says the cluster's replication is estimated,
and replicates nothing: no write set and no statement in isolation reach the cluster (the node's
wsrep_last_committed does not move), no node shows anything new.

Marked ``galera``: scripts/test runs it in its galera stage.
"""

from __future__ import annotations

import pytest

import galera
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import online, phases
from test_galera import gdb, watchdog  # noqa: F401  pylint: disable=unused-import

pytestmark = pytest.mark.galera
IMAGES = online.MIN_ROWS + 5000  # three repeats of the sample fit


def _seen(gdb, node):
    return gdb.rows("SHOW FULL TABLES", node), gdb.rows(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()", node)


def test_check_mode_through_a_node_samples_and_replicates_nothing(gdb, watchdog):  # noqa: F811
    phases.run(gdb.engine(1), "sync", version="mitaka02")
    galera.seed_pre_ocata_fast(gdb, IMAGES)
    galera.admin(1, "SELECT 1")  # the seed committed; every node has applied it once Synced
    seen = dict((node, _seen(gdb, node)) for node in galera.NODES)
    committed = galera.status(1, "wsrep_last_committed")
    durations = phases.run(gdb.engine(1), "expand", check_mode=True).plan.durations()
    assert galera.status(1, "wsrep_last_committed") == committed
    assert dict((node, _seen(gdb, node)) for node in galera.NODES) == seen
    assert [d["table"] for d in durations] == ["images"] * 3
    for step in durations:
        basis = step["estimated"]["basis"]
        assert basis.startswith("sampled on this server: 15000 rows of images copied in "), basis
        assert "times 0.75 for the Galera cluster's replication (not sampled), in batches of 250 with the run's " \
            "pauses" in basis, basis
        assert 0 < step["estimated"]["low"] < step["estimated"]["seconds"] < step["estimated"]["high"]
