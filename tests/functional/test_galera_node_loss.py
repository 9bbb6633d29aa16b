"""Galera nodes and migrators lost mid-phase: killed (SIGKILL) or frozen (SIGSTOP).

Each test runs alone (scripts/test's galera stage, no xdist) under a watchdog:
past its time limit it fails, and after every test the cluster is brought back
to 3 Synced nodes (thawed, restarted, state transfer), so a hang costs minutes.
Figures go to .build/galera-results/ and benchmarks/results/galera_tests.md.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

import galera
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.leftovers import LEASE_DATABASE
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (
    phases, state as db_state,
)
from test_galera import RUN_PHASE, record

sys.path.insert(0, str(galera.REPO / "tests" / "parity"))
import schema_dump  # noqa: E402

pytestmark = pytest.mark.galera

WATCHDOG_SECONDS = 240
IMAGES = 20000
LEASES = "%s.leases" % LEASE_DATABASE


class Watchdog(Exception):
    pass


@pytest.fixture(autouse=True)
def watchdog():
    galera.require_cluster()

    def bark(signum, frame):
        raise Watchdog("test ran past %d s: the cluster is restarted" % WATCHDOG_SECONDS)

    previous = signal.signal(signal.SIGALRM, bark)
    signal.alarm(WATCHDOG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        galera.restore_cluster()


@pytest.fixture
def seeded():
    db = galera.GaleraDatabase()
    phases.run(db.engine(1), "sync", version="mitaka02")
    galera.seed_pre_ocata_fast(db, IMAGES)
    yield db
    galera.restore_cluster()
    db.drop()


def start_run(db, node, phase="expand", ttl=10, kill=None):
    """``kill``: run_phase's KILL, e.g. "stop-before-write:2"."""
    return subprocess.Popen([sys.executable, RUN_PHASE, db.url(node), phase,
                             json.dumps({"galera_lock_ttl": ttl})] + (["", kill] if kill else []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_lost(proc, how, timeout=60):
    """Wait until the run killed or froze itself (run_phase's KILL), not finished."""
    if how == "kill":
        proc.wait(timeout)
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.communicate())
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/%d/stat" % proc.pid) as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "T":  # stopped
                return
        assert proc.poll() is None, ("the run ended before it froze", proc.communicate())
        time.sleep(0.05)
    raise AssertionError("the run did not freeze itself in %d s" % timeout)


def result_of(proc, timeout=150):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0 and out.strip(), "exit %s: %s" % (proc.returncode, err[-3000:])
    return json.loads(out.strip().splitlines()[-1])


def lease_of(db, via):
    rows = galera.admin(via, ["SET SESSION wsrep_sync_wait = 1",
                              "SELECT holder, node FROM %s WHERE name = :n" % LEASES],
                        {"n": db.name}, timeout=10)
    return rows[0] if rows else None


def wait_lease(db, via, timeout=60, other_than=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lease = lease_of(db, via)
        except Exception:  # the cluster is reconfiguring
            lease = None
        if lease and lease[0] != other_than:
            return lease
        time.sleep(0.05)
    raise AssertionError("no lease for %s through node %d in %d s" % (db.name, via, timeout))


def same_schema_everywhere(db):
    """Every node's schema, read once it has applied all the cluster committed:
    a DDL statement in TOI returns on its own node while the others may still be
    running it, and the dump's SHOW statements wait only with wsrep_sync_wait bit 8."""
    dumps = {}
    for node in galera.NODES:
        engine = sa.create_engine(db.url(node), poolclass=sa.pool.NullPool)
        sa.event.listen(engine, "connect", _wait_for_the_cluster)
        try:
            dumps[node] = schema_dump.dump(engine)
        finally:
            engine.dispose()
    assert dumps[1] == dumps[2] == dumps[3], _schema_differences(dumps)
    return dumps[1]


def _schema_differences(dumps):
    """Which node's dump differs from node 1's, and in what: tables by name, the rest by key."""
    found = []
    for node in galera.NODES[1:]:
        for key in sorted(set(dumps[1]) | set(dumps[node])):
            first, other = dumps[1].get(key), dumps[node].get(key)
            if first == other:
                continue
            if isinstance(first, dict) and isinstance(other, dict):
                names = sorted(n for n in set(first) | set(other) if first.get(n) != other.get(n))
                found.append("node %d %s: %s (node 1 has %s, node %d has %s)" % (
                    node, key, names, sorted(n for n in names if n in first), node,
                    sorted(n for n in names if n in other)))
            else:
                found.append("node %d %s: %r, node 1 %r" % (node, key, other, first))
    return "; ".join(found)


def _wait_for_the_cluster(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION wsrep_sync_wait = 15")
    cursor.close()


def kill_or_freeze(node, how):
    galera.signal_node(node, signal.SIGKILL if how == "kill" else signal.SIGSTOP)


def bring_back(node, how):
    if how == "freeze":
        galera.signal_node(node, signal.SIGCONT)
    start = time.monotonic()
    galera.restore_cluster()
    galera.wait_cluster()
    return time.monotonic() - start


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_a_node_the_run_is_not_connected_to(seeded, how):
    db = seeded
    start = time.monotonic()
    run = start_run(db, 1, ttl=30)
    wait_lease(db, 1)
    time.sleep(0.3)  # mid-phase: its revisions are being applied
    kill_or_freeze(3, how)
    result = result_of(run)
    elapsed = time.monotonic() - start
    assert result["error"] is None and result["changed"] is True, result
    rejoin = bring_back(3, how)
    state = db_state.read(db.engine(3))
    assert state.next_step == "migrate", state.version_rows
    same_schema_everywhere(db)
    record("node_loss_other_%s" % how, {
        "run_s": round(elapsed, 1), "rejoin_s": round(rejoin, 1),
        "error": result["error"], "changed": result["changed"]})


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_the_node_the_run_is_connected_to(seeded, how, tmp_path):
    """Through real Ansible: one clear msg naming the node; a re-run through another
    node completes once the lost run's lease has expired."""
    db = seeded
    import threading
    results = {}
    play = threading.Thread(target=lambda: results.update(first=galera.run_modules(tmp_path, [(
        "expand", {"connection": db.url(2), "read_timeout": 15, "galera_lock_ttl": 10})])[0]))
    play.start()
    wait_lease(db, 1, timeout=120)
    # At once: on a quiet machine the whole expand of this data set takes less than
    # a few tenths of a second after the lease, and a kill after it would miss the run.
    kill_or_freeze(2, how)
    lost_at = time.monotonic()
    again = galera.run_modules(tmp_path, [("expand", {"connection": db.url(1), "lock_timeout": 120,
                                                      "galera_lock_ttl": 10})])[0]
    rerun_s = time.monotonic() - lost_at
    play.join(120)
    first = results["first"]
    msg = galera.assert_one_clear_msg(first, "127.0.0.1:%d" % galera.port(2))
    assert not again.get("failed"), again
    assert again["glance_db"]["next_step"] == "migrate", again
    rejoin = bring_back(2, how)
    same_schema_everywhere(db)
    record("node_loss_connected_%s" % how, {
        "msg": msg, "rerun_through_node1_s": round(rerun_s, 1),
        "rerun_changed": again["changed"], "rejoin_s": round(rejoin, 1)})


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_lock_takeover_after_the_holder_is_lost(seeded, how):
    """The migrator itself is killed or frozen mid-phase, its node healthy: another
    run through another node takes the lease over once it has expired (TTL 10 s);
    a frozen holder, thawed, stops before its next statement (fencing)."""
    db = seeded
    # The holder kills or freezes itself before its 2nd write: a signal sent from
    # here some time after the lease showed up could come after a fast expand's
    # end (the taker then finds nothing to do and takes no lease).
    holder = start_run(db, 1, ttl=10, kill=("stop-" if how == "freeze" else "") + "before-write:2")
    token = wait_lease(db, 3)[0]
    wait_lost(holder, how)
    lost_at = time.monotonic()
    taker = start_run(db, 2, ttl=10)
    try:
        wait_lease(db, 3, timeout=120, other_than=token)
    except AssertionError as exc:
        raise AssertionError("%s; the taker: %s" % (
            exc, taker.communicate(timeout=5) if taker.poll() is not None else "still running"))
    takeover_s = time.monotonic() - lost_at
    taken = result_of(taker)
    assert taken["error"] is None, taken
    fenced = None
    if how == "freeze":
        holder.send_signal(signal.SIGCONT)
        fenced = result_of(holder)
        assert fenced["error"] and "lost the Galera migration lock" in fenced["error"], fenced
    else:
        holder.wait(30)
    state = db_state.read(db.engine(3))
    assert state.next_step == "migrate", state.version_rows
    same_schema_everywhere(db)
    record("takeover_after_holder_%s" % how, {
        "ttl_s": 10, "takeover_s": round(takeover_s, 1),
        "taker_changed": taken["changed"], "thawed_holder": fenced})
