"""A second run finds nothing to do: changed false, and not one byte written."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, state
from parity import schema_dump
from seed import seed_pre_ocata


def _fingerprint(db):
    """The SQLite file's bytes and mtime; elsewhere the schema and every table's checksum."""
    if db.engine_name == "sqlite":
        path = Path(db.engine.url.database)
        return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns
    tables = sorted(schema_dump.dump(db.engine)["tables"])
    if db.engine_name == "mysql":
        sums = db.rows("CHECKSUM TABLE %s" % ", ".join(tables + ["alembic_version"]))
    else:
        sums = [(t, db.scalar("SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM %s x" % t))
                for t in tables + ["alembic_version"]]
    return schema_dump.dump(db.engine), sums


def test_second_sync_writes_nothing(database):
    phases.run(database.engine, "sync", version="mitaka02")
    seed_pre_ocata(database)
    assert phases.run(database.engine, "sync").changed
    before = _fingerprint(database)
    again = phases.run(database.engine, "sync")
    assert not again.changed and again.plan.empty
    assert _fingerprint(database) == before


def test_reading_facts_writes_nothing(database):
    phases.run(database.engine, "sync", version="ocata_contract01")
    database.execute("UPDATE alembic_version SET version_num = 'ocata01'")  # legacy row
    before = _fingerprint(database)
    facts = state.read(database.engine).as_facts()
    assert facts["revisions"] == ["ocata_contract01"] and facts["next_step"] == "expand"
    assert _fingerprint(database) == before
