"""A held swap (hold_swap) on the 3-node cluster: an online expand through node 1 copies
images and waits before each swap while the release file exists; meanwhile stand-ins for
release N-1's API nodes insert and rename images through nodes 2 and 3, and none of their
writes fails, the copy keeps in step on the cluster, and the migration lock's lease,
held past its TTL, is renewed: another run through node 3 is refused. Once the file is
removed every copy is swapped, every node has the writers' rows and real Glance's schema.

Marked ``galera``: scripts/test runs it in its galera stage.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

import galera
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import online, phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import LockTimeout
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.leftovers import LEASE_DATABASE
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.options import RunOptions
from parity import differences
from test_galera import gdb, record, watchdog  # noqa: F401  pylint: disable=unused-import
from test_galera_table_copy import Writer
from test_held_swap import swap_renames

pytestmark = pytest.mark.galera
IMAGES = online.MIN_ROWS + 2000
LEASE_TTL = 5  # galera_lock_ttl: the first hold outlasts it (the lease's floor is 4 s)
FIRST_HOLD = LEASE_TTL + 2  # seconds
LATER_HOLDS = 2


def _lease(name):
    """(expires_at, not yet expired, holder) of the run's lease, read through node 2."""
    return galera.admin(2, ["SET SESSION wsrep_sync_wait = 1",
                            "SELECT expires_at, expires_at > UTC_TIMESTAMP(6), holder FROM %s.leases "
                            "WHERE name = :n" % LEASE_DATABASE], {"n": name})[0]


def _in_step(gdb):
    """(rows of images, of the copy, of the copy's rows whose name is the table's), one snapshot
    through node 2 once it has applied every write the cluster committed."""
    with gdb.engine(2).connect() as conn:
        conn.exec_driver_sql("SET SESSION wsrep_sync_wait = 15")
        return tuple(conn.exec_driver_sql(
            "SELECT (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM _glance_new_images), "
            "(SELECT COUNT(*) FROM images i JOIN _glance_new_images c USING (id) WHERE i.name <=> c.name)"
        ).fetchone())


def _rival_refused(gdb):
    """Whether another expand, through node 3, is refused the lock (1 s lock_timeout)."""
    try:
        phases.run(gdb.engine(3), "expand", lock_timeout=1, galera_lock_ttl=LEASE_TTL)
    except LockTimeout:
        return True
    return False


def _hold(gdb, release, seconds, writers, renames, first):
    """One held swap, from the moment the release file is seen to its removal: what it showed."""
    for node in (2, 3):  # the copy's last batch applied there: a write it aborted is not the hold's
        galera.admin(node, ["SET SESSION wsrep_sync_wait = 1", "SELECT 1"])
    started = time.monotonic()
    done_before = sum(w.done for w in writers)
    renames_before = len(renames)
    lease_before = _lease(gdb.name)
    time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    hold = dict(started=started, lease_before=lease_before, lease_after=_lease(gdb.name),
                rival_refused=_rival_refused(gdb) if first else None, counts=_in_step(gdb))
    hold.update(written=sum(w.done for w in writers) - done_before, swapped=len(renames) > renames_before,
                errors=[e for w in writers for e in w.errors if e[0] >= started],
                seconds=round(time.monotonic() - started, 1))
    release.unlink()  # the documented action: the swap goes ahead
    return hold


def test_a_held_swap_keeps_the_cluster_writing_and_the_lease_renewed(gdb, tmp_path):
    started = time.monotonic()
    phases.run(gdb.engine(1), "sync", version="mitaka02")
    galera.seed_pre_ocata_fast(gdb, IMAGES)
    renames = swap_renames(gdb.engine(1))
    release = tmp_path / "release-swap"
    result = {}

    def expand():
        try:
            result["outcome"] = phases.run(gdb.engine(1), "expand", options=RunOptions(
                hold_swap=str(release), galera_lock_ttl=LEASE_TTL))
        except BaseException as exc:  # pylint: disable=broad-except
            result["error"] = exc

    writers = [Writer(gdb.engine(node), node, IMAGES) for node in (2, 3)]
    run = threading.Thread(target=expand)
    for thread in writers + [run]:
        thread.start()
    holds = []
    try:
        while run.is_alive():
            if not release.exists():
                time.sleep(0.1)
                continue
            holds.append(_hold(gdb, release, LATER_HOLDS if holds else FIRST_HOLD, writers, renames, not holds))
    finally:
        if release.exists():
            release.unlink()
        run.join(300)
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join(30)
    assert "error" not in result, result
    copies = result["outcome"].table_copies
    record("held_swap", {"images": IMAGES, "lease_ttl": LEASE_TTL, "seconds": round(time.monotonic() - started, 1),
                         "held_seconds": [c.get("held_seconds") for c in copies],
                         "written_while_held": [h["written"] for h in holds],
                         "written": sum(w.done for w in writers),
                         "errors_by_code": Counter(str(code) for w in writers for at, code in w.errors)})
    assert len(copies) == len(holds) == 3 and len(renames) == 3, (copies, holds, renames)
    for hold in holds:
        assert not hold["swapped"] and hold["written"] > 0 and hold["errors"] == [], hold
        assert hold["counts"][0] == hold["counts"][1] == hold["counts"][2] >= IMAGES, hold
    first = holds[0]
    assert first["seconds"] > LEASE_TTL and first["rival_refused"], first
    # Renewed by its heartbeat: the same holder, never expired, and a later expiry.
    assert first["lease_before"][1:] == first["lease_after"][1:] and first["lease_after"][1] == 1, first
    assert first["lease_after"][0] > first["lease_before"][0], first
    assert [c["held_seconds"] >= h["seconds"] - 0.1 for c, h in zip(copies, holds)] == [True] * 3, (copies, holds)
    assert sum(w.failed for w in writers) == 0, [w.errors for w in writers]
    inserted = [i for w in writers for i in w.inserted]
    # From the second hold (Rocky's copies) Glance's Ocata triggers, created after the first swap
    # and carried across the later ones, give N-1's inserts their visibility; earlier ones wait for migrate.
    under_triggers = [i for w in writers for i in w.inserted if w.inserted_at[i] >= holds[1]["started"]]
    renamed = dict(kv for w in writers for kv in w.renamed.items())
    for node in galera.NODES:
        with gdb.engine(node).connect() as conn:
            conn.exec_driver_sql("SET SESSION wsrep_sync_wait = 15")
            rows = dict((r[0], r[1:]) for r in conn.exec_driver_sql(
                "SELECT id, name, visibility, is_public FROM images").fetchall())
        missing = [i for i in inserted if rows.get(i, (None,))[0] != "n%d" % int(i[-12:])]
        wrong = dict((i, rows[i][0]) for i, name in renamed.items() if rows[i][0] != name)
        hidden = [i for i in under_triggers if rows[i][1:] != ("public", 1)]
        assert (len(rows), missing, wrong, hidden) == (IMAGES + len(inserted), [], {}, []), node
        assert differences(gdb.engine(node), "mysql", "online_expand_from_mitaka02") == "", node
