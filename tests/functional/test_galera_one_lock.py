"""Every writing module takes one lock, with the same options: on Galera, the lease in
galera_lock_database, even when that is not the default database.

Before the server profile decided the lock once (profile.py), purge and metadefs took no
galera_lock_* options and locked the default lease database, so with another
galera_lock_database a purge, a metadefs load and an expand could run at once.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
import types

import pytest

import galera
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (
    lock, metadefs, phases, purge)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import state as db_state
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.options import RunOptions
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.profile import ServerProfile
from test_purge import seed

pytestmark = pytest.mark.galera


@pytest.fixture
def gdb():
    galera.require_cluster()
    db = galera.GaleraDatabase()
    lease_database = "glance_lock_t%s" % db.name[-8:]
    yield db, lease_database
    db.drop()
    galera.admin(1, "DROP DATABASE IF EXISTS %s" % lease_database)


def test_purge_metadefs_and_expand_wait_for_one_lease_in_a_non_default_database(gdb, tmp_path, monkeypatch):
    db, lease_database = gdb
    phases.run(db.engine(1), "sync", version="2023_1_contract01")  # expand has 2024_1_expand01 to do
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    seed(types.SimpleNamespace(engine=db.engine(1)), now, images=30, tasks=12)
    namespace = {"namespace": "OS::Test", "display_name": "Test", "properties": {}}
    (tmp_path / "OS_Test.json").write_text(json.dumps(namespace))
    options = RunOptions(galera_lock_database=lease_database, lock_timeout=120, galera_lock_ttl=20)

    held = []  # (who, asked, got, released) for each lock the modules took
    taken = ServerProfile.migration_lock

    def recorded(self, engine, run_options):
        inner = taken(self, engine, run_options)

        class Recording(object):
            def __enter__(self):
                self.asked = time.monotonic()
                inner.__enter__()
                self.got = time.monotonic()

            def __exit__(self, *exc):
                released = time.monotonic()
                held.append((threading.current_thread().name, self.asked, self.got, released))
                return inner.__exit__(*exc)
        return Recording()
    monkeypatch.setattr(ServerProfile, "migration_lock", recorded)

    errors, results = [], {}

    def call(name, job):
        def body():
            try:
                results[name] = job()
            except Exception as exc:  # reported below
                errors.append((name, repr(exc)))
        return threading.Thread(target=body, name=name)

    # Another run holds the lease there; each module, through its own node, must wait for it.
    holder = lock.GaleraLease(db.engine(1), 20, lease_database)
    holder.acquire(30)
    threads = [
        call("purge", lambda: purge.run(purge.Purge(db.engine(2), max_rows=-1), options)),
        call("metadefs", lambda: metadefs.load(db.engine(3), str(tmp_path), options)),
        call("expand", lambda: phases.run(db.engine(3), "expand", options=options)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(4)
    try:
        assert all(thread.is_alive() for thread in threads), errors
        assert db.scalar("SELECT COUNT(*) FROM tasks", node=2) == 12  # nothing purged yet
        assert db.scalar("SELECT COUNT(*) FROM metadef_namespaces", node=2) == 0
        assert "2024_1_expand01" not in db_state.read(db.engine(2)).version_rows
    finally:
        holder.release()
    for thread in threads:
        thread.join(180)
    assert errors == []
    assert sorted(who for who, *_times in held) == ["expand", "metadefs", "purge"]
    # One at a time: each held the lease after the one before had let it go.
    spans = sorted(held, key=lambda span: span[2])
    for before, after in zip(spans, spans[1:]):
        assert after[2] >= before[3], spans
    assert results["purge"]["total"] > 0
    assert db.scalar("SELECT COUNT(*) FROM tasks", node=1) == 12 - results["purge"]["rows"]["tasks"]
    assert db.scalar("SELECT COUNT(*) FROM metadef_namespaces", node=1) == 1
    assert "2024_1_expand01" in db_state.read(db.engine(1)).version_rows
