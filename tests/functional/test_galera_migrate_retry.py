"""A data migration batch that loses to an application write through another
Galera node (error 1213) runs again, and migrates every row once.

Marked ``galera``: scripts/test runs it in its galera stage (scripts/galera).
"""

from __future__ import annotations

import types

import pytest
import sqlalchemy as sa

import galera
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.data_migrations import (
    ocata_migrate01_community_images as ocata,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.db_errors import (
    FIRST_BACKOFF_SECONDS,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.runner import Runner
from seed import seed_pre_ocata

pytestmark = pytest.mark.galera


class ConflictOnce(object):
    """The Ocata step; its first batch, still uncommitted through node 1, meets
    an API node's update of one of its rows committed through node 2."""

    def __init__(self, step, gdb):
        self.step = step
        self.gdb = gdb
        self.applied = 0

    def next_keys(self, conn, after, limit):
        return self.step.next_keys(conn, after, limit)

    def apply(self, conn, keys):
        count = self.step.apply(conn, keys)
        self.applied += 1
        if self.applied == 1:
            with self.gdb.engine(2).begin() as other:
                other.execute(sa.text("UPDATE images SET size = size + 1 WHERE id = :id"),
                              {"id": keys[0]})
        return count


def test_a_batch_that_lost_certification_runs_again(tmp_path):
    galera.require_cluster()
    gdb = galera.GaleraDatabase()
    try:
        phases.run(gdb.engine(1), "sync", version="mitaka02")
        expected = seed_pre_ocata(types.SimpleNamespace(engine=gdb.engine(1)), count=60)
        phases.run(gdb.engine(1), "expand")
        step = ConflictOnce(ocata.STEPS[0], gdb)
        sleeps = []
        runner = Runner(gdb.engine(1), online=False, sleep=sleeps.append)

        migrated = runner.run_data_migration(types.SimpleNamespace(name=ocata.name, STEPS=(step,) + ocata.STEPS[1:]),
                                             batch_size=25)

        # 60 rows in batches of 25: 3 batches, the first one twice.
        assert step.applied == 4
        assert sleeps == [FIRST_BACKOFF_SECONDS]
        assert migrated == 60  # the first step gives every image its visibility, shared ones too
        assert dict(gdb.rows("SELECT id, visibility FROM images")) == expected
        # The API node's write is kept as well.
        assert gdb.scalar("SELECT size FROM images WHERE id = :id", id=sorted(expected)[0]) == 1025
    finally:
        gdb.drop()
