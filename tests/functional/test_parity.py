"""Schema parity with real Glance: zero differences at every release state."""

from __future__ import annotations

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from parity import RELEASE_STATES, differences


def test_fresh_sync_equals_glance_db_sync(database):
    phases.run(database.engine, "sync")
    assert differences(database.engine, database.engine_name, "fresh_sync") == ""


def test_every_release_state_equals_glance(database):
    """Walk the release states one after the other, comparing each with Glance's."""
    for state in RELEASE_STATES:
        # Real `glance-manage db upgrade` to an expand revision runs online (MySQL
        # triggers included); ours does that as the expand phase (refused on PostgreSQL).
        online = "_expand" in state and database.engine_name != "postgresql"
        phases.run(database.engine, "expand" if online else "sync", version=state)
        diff = differences(database.engine, database.engine_name, state)
        assert diff == "", "schema differs from Glance's at %s:\n%s" % (state, diff)


@pytest.mark.parametrize("engine_name", ["mysql"])
def test_online_expand_from_mitaka02_equals_glance_db_expand(make_database, engine_name):
    database = make_database(engine_name)
    phases.run(database.engine, "sync", version="mitaka02")
    phases.run(database.engine, "expand")
    assert differences(database.engine, engine_name, "online_expand_from_mitaka02") == ""
