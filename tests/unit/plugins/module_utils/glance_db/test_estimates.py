"""The arithmetic of the duration estimates (estimates.py); the sample itself is measured on a real
server in tests/functional/test_estimates.py."""

from __future__ import annotations

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import estimates
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.data_migrations import (
    ocata_migrate01_community_images as ocata,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.flow_control import GALERA_BATCH_ROWS
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.online import BATCH_ROWS

SAMPLE = [40000.0, 50000.0, 60000.0]  # rows/s of three repeats


def _rates(**kwargs):
    rates = estimates.Rates(**kwargs)
    rates.samples["images"] = list(SAMPLE)
    return rates


def _with_pauses(rows, rate, batch_rows=BATCH_ROWS):
    """``rows`` at ``rate`` in batches, each followed by the online pause (at least 20 ms)."""
    return rows / rate + (rows // batch_rows) * max(0.02, batch_rows / rate)


def test_a_sampled_copy_is_its_rows_at_the_median_rate_with_a_pause_after_each_batch():
    rows = 100 * BATCH_ROWS
    estimate = _rates().copy("images", rows)
    assert estimate["seconds"] == pytest.approx(_with_pauses(rows, 50000 * estimates.COPY_SHARE), abs=0.05)
    # The range: the fastest and slowest repeats, widened by the margin.
    assert estimate["low"] == pytest.approx(
        _with_pauses(rows, 60000 * estimates.COPY_SHARE * estimates.SAMPLE_MARGIN), abs=0.05)
    assert estimate["high"] == pytest.approx(
        _with_pauses(rows, 40000 * estimates.COPY_SHARE / estimates.SAMPLE_MARGIN), abs=0.05)
    assert estimate["basis"].startswith("sampled on this server: 15000 rows of images copied in 0.31 s "
                                        "(3 repeats, 40000 to 60000 rows/s); a copy runs at %.2g of that, in "
                                        "batches of 1000 with the run's pauses." % estimates.COPY_SHARE)


def test_an_offline_data_migration_makes_no_pause():
    rows = 50000
    estimate = _rates(online=False).migration(ocata, rows)
    assert estimate["seconds"] == pytest.approx(rows / (50000 * estimates.MIGRATION_SHARE[ocata.name]), abs=0.05)
    assert "batches of 5000." in estimate["basis"] and "pauses" not in estimate["basis"]


def test_on_galera_batches_are_smaller_slower_and_the_range_wider():
    one, cluster = _rates().copy("images", 100000), _rates(galera=True).copy("images", 100000)
    assert _rates(galera=True).copy_batch_rows == GALERA_BATCH_ROWS
    assert cluster["seconds"] > one["seconds"]
    assert cluster["high"] / cluster["seconds"] > one["high"] / one["seconds"]  # (the low end: the pauses' floor)
    assert "batches of %d" % GALERA_BATCH_ROWS in cluster["basis"] and "Galera" in cluster["basis"]


def test_without_a_sample_the_fixed_rates_answer_and_say_why():
    rates = estimates.Rates()
    rates.unsampled["images"] = "table images has fewer than 5000 rows to sample"
    estimate = rates.copy("images", 30000)
    assert estimate == estimates.copy_duration(30000, False, "table images has fewer than 5000 rows to sample")
    assert (estimate["seconds"], estimate["low"], estimate["high"]) == (3.0, 1.5, 6.0)
    assert estimate["basis"] == ("fixed rate measured on test servers: 30000 rows at 10000 rows/s; the real time "
                                 "may be half to twice this (no sample: table images has fewer than 5000 rows to "
                                 "sample)")
    assert rates.migration(ocata, 9000)["basis"].endswith(
        "may be half to twice this (no sample: table images has fewer than 5000 rows to sample)")
    assert estimates.Rates().copy("tasks", 30000)["basis"].endswith("half to twice this")  # not tried: no reason
    assert rates.copy("images", None) is None
