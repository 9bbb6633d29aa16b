"""The shadow-table copy (online/copier.py) on the 3-node cluster: expand and contract
through node 1 rebuild ``images`` through a copy while API stand-ins write through
nodes 2 and 3 (retrying error 1213 as Glance does); no write fails or is lost,
and every node ends with real Glance's head schema and no copy left behind.

Marked ``galera``: scripts/test runs it in its galera stage.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
import sqlalchemy as sa

import galera
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import flow_control, phases
from parity import HEAD, differences
from seed import IMAGE_INSERT, image_id
from test_galera import gdb, record, watchdog  # noqa: F401  pylint: disable=unused-import
from test_held_swap import swap_renames

pytestmark = pytest.mark.galera
IMAGES = 20000
DEADLOCK = 1213


class Writer(threading.Thread):
    """Release N-1 through one node: inserts an image (is_public) with a property, then renames
    one of its half of the seeded images; a deadlock (a swap's statement in TOI, a copy batch) is
    retried as oslo.db's wrap_db_retry does (0.5 s, up to 5 times). Also test_galera_held_swap's."""

    def __init__(self, engine, node, images=IMAGES):
        super().__init__(daemon=True)
        self.engine, self.node, self.images = engine, node, images  # images: how many were seeded
        self.stop = threading.Event()
        self.inserted, self.renamed = [], {}
        self.inserted_at = {}  # image id -> monotonic time of its insert's commit
        self.under_triggers = []  # inserted while Glance's Ocata triggers (or stand-ins) were on images
        self.done = 0  # writes that succeeded
        self.errors = []  # every error met, retried or not: (monotonic time, code)
        self.deadlocks = self.failed = 0  # deadlocks retried; writes that failed after their retries

    def _retry(self, work):
        for attempt in range(6):
            try:
                with self.engine.begin() as conn:
                    done = work(conn)
                self.done += 1
                return done
            except sa.exc.DBAPIError as exc:
                code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
                self.errors.append((time.monotonic(), code))
                if code != DEADLOCK or attempt == 5:
                    self.failed += 1
                    return None
                self.deadlocks += 1
                time.sleep(0.5)

    def run(self):
        n = self.node * 1000000
        while not self.stop.is_set():
            n += 1
            new = image_id(n)

            def insert(conn):
                triggers = conn.exec_driver_sql(
                    "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
                    "AND ACTION_TIMING = 'BEFORE'").scalar()
                conn.execute(sa.text(IMAGE_INSERT.replace("is_public", "visibility").replace(
                    ":visibility", "'public'")) if self.visibility else sa.text(IMAGE_INSERT),
                    dict(id=new, name="n%d" % n, is_public=True, deleted=False, protected=False))
                conn.execute(sa.text("INSERT INTO image_properties (image_id, name, value, created_at, deleted) "
                                     "VALUES (:i, 'k', 'v', CURRENT_TIMESTAMP, 0)"), dict(i=new))
                return "under triggers" if triggers else "inserted"
            done = self._retry(insert)
            if done:
                self.inserted_at[new] = time.monotonic()
                self.inserted.append(new)
                if done == "under triggers":
                    self.under_triggers.append(new)
            old = image_id(random.randrange(self.node % 2, self.images, 2))  # any image of this writer's half
            if self._retry(lambda conn: conn.execute(sa.text("UPDATE images SET name = :m WHERE id = :i"),
                                                     dict(m="r%d" % n, i=old))):
                self.renamed[old] = "r%d" % n
            time.sleep(0.02)

    visibility = False  # after contract an N node writes visibility, not is_public


def inserted_so_far(writers):
    """The images inserted while Glance's Ocata triggers (or their stand-ins) were on images."""
    return [i for w in writers for i in list(w.under_triggers)]


def _null_visibilities(engine, ids):
    """How many of the images the stand-in API nodes inserted (is_public only, as release
    N-1 does) have no visibility: the triggers, or their stand-ins, must have given each one."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION wsrep_sync_wait = 15")
        found = [row[0] for row in conn.exec_driver_sql("SELECT id FROM images WHERE visibility IS NULL")]
    return len(set(found) & set(ids))


def test_expand_and_contract_copy_images_while_every_node_writes(gdb):
    phases.run(gdb.engine(1), "sync", version="mitaka02")
    galera.seed_pre_ocata_fast(gdb, IMAGES)
    renames = swap_renames(gdb.engine(1))

    writers = [Writer(gdb.engine(node), node) for node in (2, 3)]
    for writer in writers:
        writer.start()
    took = {}
    try:
        for phase in ("expand", "migrate", "contract"):
            if phase == "contract":  # every API node runs release N now: visibility only
                for writer in writers:
                    writer.visibility = True
            started = time.monotonic()
            args = {"batch_size": 1000} if phase == "migrate" else {}  # the role's batch size
            outcome = phases.run(gdb.engine(1), phase, galera_lock_ttl=30, **args)
            took[phase] = round(time.monotonic() - started, 1)
            for copy in outcome.table_copies:  # the cluster's smaller batches (flow control may halve them)
                assert copy["batches"] >= copy["rows"] / flow_control.GALERA_BATCH_ROWS, copy
            if phase == "expand":  # Glance's Ocata triggers carried across the Rocky copies, on every node
                assert len(inserted_so_far(writers)) > 10  # N-1 writes while the Rocky copies ran
                for node in galera.NODES:
                    assert differences(gdb.engine(node), "mysql", "online_expand_from_mitaka02") == "", node
                    assert _null_visibilities(gdb.engine(node), inserted_so_far(writers)) == 0, node
    finally:
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join(30)
    # expand: Ocata's visibility index and is_public (one copy), then each Rocky index with Ocata's
    # triggers carried across; contract: visibility
    assert len(renames) == 4, renames
    inserted = [i for w in writers for i in w.inserted]
    renamed = dict(kv for w in writers for kv in w.renamed.items())
    record("table_copy", {"images": IMAGES, "seconds": took, "inserted": len(inserted),
                          "renamed": len(renamed), "deadlocks_retried": sum(w.deadlocks for w in writers),
                          "failed_after_retries": sum(w.failed for w in writers)})
    assert len(inserted) > 20 and sum(w.failed for w in writers) == 0
    for node in galera.NODES:
        with gdb.engine(node).connect() as conn:
            conn.exec_driver_sql("SET SESSION wsrep_sync_wait = 15")
            names = dict(conn.exec_driver_sql("SELECT id, name FROM images").fetchall())
            left = conn.execute(sa.text(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME LIKE '\\_glance\\_%' UNION SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA = DATABASE()")).fetchall()
        assert left == [], (node, left)
        assert all(i in names for i in inserted), node
        wrong = dict((i, (name, names.get(i))) for i, name in renamed.items() if names.get(i) != name)
        assert wrong == {}, node
        assert differences(gdb.engine(node), "mysql", HEAD) == "", node
