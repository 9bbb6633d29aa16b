"""A purge never makes a Glance write fail or wait for it (single MariaDB server).

A database at head holds IMAGES images, half of them soft-deleted long ago with their
properties, tag, location and member, and tasks, 80 % deleted long ago
(benchmarks/purge.py's data), with ids spread over the key space as Glance's uuid4
ones are. Two API nodes of real Glance 33's database API (glance_client.py: image
create with properties, tags, members, locations, updates, destroys, tasks; Glance's
own retries) write meanwhile, so their new rows fall between the purged ones; the
purge runs as glance_db_purge does (purge.run), on the children and tasks, or on the
images table.

Counted on the writers' side: calls failed, deadlocks Glance retried, and every wait
of a writer's transaction for a row lock the purge held (polled from InnoDB's lock
waits). Needs the oracle virtualenv (tests/parity/oracle-venv), as test_glance_client.

Then a row a batch is about to purge is un-deleted by a transaction that holds it: the
batch must wait for it and keep it (READ COMMITTED judges it as that transaction left it).
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

import glance_client
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import connection, phases, purge
# oracle_python is a fixture, used by name.
from test_glance_client import oracle_python  # noqa: F401  pylint: disable=unused-import

glance_client._bench()  # benchmarks/ on the path
import purge as purge_benchmark  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order

IMAGES = 4000  # about 17,000 rows to purge; tables small enough that a batch scans them whole
SETTLE = 1.0  # seconds of load before and after the purge
POLL = 0.02  # seconds between two looks at InnoDB's lock waits
# The longest a writer may wait for the purge's row locks, in all: a few polls.
WAIT_BOUND = 0.5


class LockWaits(object):
    """Every wait of another session for a row lock held by one of ``ours`` (connection
    ids; ``ours_waiting``: every wait of one of ours), seen by polling InnoDB's lock waits
    every POLL seconds: {(waiter, wait started): seconds it was seen waiting}, to a poll's
    time (the server gives whole seconds)."""

    def __init__(self, url, ours, ours_waiting=False):
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.ours = ours
        self.ours_waiting = ours_waiting
        self.waits = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        with self.engine.connect() as conn:
            last = time.monotonic()
            while not self.stopping.is_set():
                rows = conn.exec_driver_sql(
                    "SELECT r.trx_mysql_thread_id, r.trx_wait_started, b.trx_mysql_thread_id "
                    "FROM information_schema.INNODB_LOCK_WAITS w "
                    "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id "
                    "JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id").all()
                conn.rollback()
                now = time.monotonic()
                for waiter, started, holder in rows:
                    if (waiter in self.ours) if self.ours_waiting else (holder in self.ours and waiter not in self.ours):
                        self.waits[(waiter, started)] = self.waits.get((waiter, started), 0.0) + now - last
                last = now
                self.stopping.wait(POLL)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()
        self.engine.dispose()


def engine_of_ours(url):
    """An engine for the purge, as the module makes it, and the server ids of its connections."""
    engine = connection.create_engine(connection.resolve_url(url))
    ours = set()
    sa.event.listen(engine, "connect", lambda dbapi_connection, record: ours.add(dbapi_connection.thread_id()))
    return engine, ours


def purge_under_glance(db, python, directory, images_table):
    """Purge ``db`` while real Glance writes to it; return the purge's counts, the job,
    Glance's calls that overlapped the purge, all of them, the writers' lock waits and
    the purge's seconds."""
    engine, ours = engine_of_ours(db.url)
    job = purge.Purge(engine, max_rows=-1, images_table=images_table)
    nodes = glance_client.GlanceNodes(db.url, directory, nodes=2, python=python)
    nodes.start()
    try:
        with LockWaits(db.url, ours) as waits:
            nodes.go()
            time.sleep(SETTLE)
            start = time.time()
            done = purge.run(job)
            end = time.time()
            time.sleep(SETTLE)
        calls = nodes.stop()
    except BaseException:
        nodes.terminate()
        raise
    finally:
        engine.dispose()
    during = [c for c in calls if c["start"] < end and c["end"] > start]
    return done, job, during, calls, waits.waits, end - start


@pytest.mark.parametrize("images_table", (False, True), ids=("purge", "purge_images_table"))
def test_no_glance_write_fails_or_waits_for_a_purge(make_database, oracle_python, tmp_path, images_table):
    db = make_database("mysql")
    phases.run(db.engine, "sync")
    purge_benchmark.populate(db.url, IMAGES, spread=True)
    planned = purge.Purge(db.engine, max_rows=-1, images_table=images_table).plan()

    done, job, during, calls, waits, seconds = purge_under_glance(db, oracle_python, tmp_path, images_table)

    failed = [c for c in during if not c["ok"]]
    retried = [c for c in during if c["glance_retries"]]
    longest = max(waits.values(), default=0.0)
    print("\n%s: %d rows in %.1f s, %d batch retries; %d Glance calls during it, %d failed, %d retried "
          "on a deadlock; writers waited for the purge's locks %d times, %.2f s in all, longest %.2f s"
          % ("purge_images_table" if images_table else "purge", done["total"], seconds, job.retries,
             len(during), len(failed), len(retried), len(waits), sum(waits.values()), longest))
    assert done["rows"] == planned and done["total"] > 0
    assert len(during) >= 10  # the writers wrote all along
    assert failed == [], glance_client.describe(glance_client.failures(failed, {}))
    assert retried == [], [(c["call"], c["glance_retries"]) for c in retried]
    assert sum(waits.values()) <= WAIT_BOUND, sorted(waits.values())[-10:]
    # Nothing of what Glance wrote meanwhile went with the purge.
    assert glance_client.verify_glance(db.url, calls)["problems"] == []


@pytest.mark.parametrize("images_table", (False, True), ids=("purge", "purge_images_table"))
def test_a_row_undeleted_while_a_batch_waits_for_it_is_kept(make_database, images_table):
    """The batch meets the row locked by a transaction that un-deletes it: in READ COMMITTED it
    reads the row's last committed version (still a candidate), waits, and must then judge the
    row as that transaction left it, and keep it (with its children, for an image)."""
    db = make_database("mysql")
    phases.run(db.engine, "sync")
    purge_benchmark.populate(db.url, 400, spread=True)
    table = "images" if images_table else "image_properties"
    old = "deleted = 1 AND deleted_at < NOW() - INTERVAL 200 DAY"  # purged at either age
    kept = db.scalar("SELECT id FROM %s WHERE %s ORDER BY id LIMIT 1 OFFSET 50" % (table, old))
    children = {name: db.scalar("SELECT COUNT(*) FROM %s WHERE image_id = :i" % name, i=kept)
                for name in purge.IMAGE_CHILDREN} if images_table else None
    engine, ours = engine_of_ours(db.url)
    job = purge.Purge(engine, max_rows=-1, images_table=images_table, lock_wait_timeout=30)
    planned = job.plan()
    other = sa.create_engine(db.url, poolclass=sa.pool.NullPool)
    undelete = other.connect()
    undelete.execute(sa.text("UPDATE %s SET deleted = 0, deleted_at = NULL WHERE id = :i" % table), {"i": kept})
    outcome = {}
    purging = threading.Thread(target=lambda: outcome.update(done=job.run()))
    try:
        with LockWaits(db.url, ours, ours_waiting=True) as waits:
            purging.start()
            # Until the purge is seen waiting (the poll may lag on a busy server) or it ends.
            deadline = time.monotonic() + 10
            while not waits.waits and purging.is_alive() and time.monotonic() < deadline:
                time.sleep(POLL)
            waited = purging.is_alive()  # its 400 images take a fraction of a second unless it waits
            undelete.commit()
            purging.join(60)
    finally:
        undelete.close()
        other.dispose()
        engine.dispose()
    assert waited and "done" in outcome
    assert outcome["done"][table] == planned[table] - 1
    assert db.scalar("SELECT deleted FROM %s WHERE id = :i" % table, i=kept) == 0
    if images_table:
        assert children == {name: db.scalar("SELECT COUNT(*) FROM %s WHERE image_id = :i" % name, i=kept)
                            for name in purge.IMAGE_CHILDREN}
        assert all(children.values())
    assert db.scalar("SELECT COUNT(*) FROM %s WHERE %s" % (table, old)) == 0
