"""Databases in every kind of starting state, and the refusals that protect them."""

from __future__ import annotations

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, state
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import (
    DowngradeRefused, NotGlanceDatabase, PhaseOrderError, UnknownRevision,
)
from parity import HEAD, differences, schema_dump

LEGACY = {42: "liberty", 43: "mitaka01", 44: "mitaka02", 45: "ocata_contract01"}


def _make_legacy(db, revision, version):
    """A database as older Glance left it under sqlalchemy-migrate control."""
    phases.run(db.engine, "sync", version=revision)
    db.execute("DROP TABLE alembic_version")
    db.execute("CREATE TABLE migrate_version (repository_id VARCHAR(250) NOT NULL PRIMARY KEY, "
               "repository_path TEXT, version INTEGER)")
    db.execute("INSERT INTO migrate_version VALUES ('Glance Migrations', '/glance/migrate_repo', :v)",
               v=version)


@pytest.mark.parametrize("version", sorted(LEGACY))
def test_legacy_sqlalchemy_migrate_database_is_synced(database, version):
    _make_legacy(database, LEGACY[version], version)
    facts = state.read(database.engine).as_facts()
    assert facts["legacy_migrate_version"] == version and facts["revisions"] == [LEGACY[version]]
    phases.run(database.engine, "sync")
    dumped = schema_dump.dump(database.engine)
    assert "migrate_version" in dumped["tables"]  # left in place, as older Glance did
    database.execute("DROP TABLE migrate_version")
    assert differences(database.engine, database.engine_name, HEAD) == ""


def test_legacy_version_before_liberty_is_refused(make_database):
    db = make_database("sqlite")
    _make_legacy(db, "liberty", 38)
    with pytest.raises(NotGlanceDatabase, match="upgrade it to Liberty"):
        phases.run(db.engine, "sync")


@pytest.mark.parametrize("legacy_row,meaning", [("ocata01", "ocata_contract01"), ("pike01", "pike_contract01")])
def test_legacy_alembic_rows_are_read_without_writing(database, legacy_row, meaning):
    phases.run(database.engine, "sync", version=meaning)
    database.execute("UPDATE alembic_version SET version_num = :v", v=legacy_row)
    facts = state.read(database.engine).as_facts()
    assert facts["revisions"] == [meaning]
    assert database.rows("SELECT version_num FROM alembic_version") == [(legacy_row,)]
    phases.run(database.engine, "sync")
    assert database.rows("SELECT version_num FROM alembic_version") == [(HEAD,)]


def test_unknown_revision_in_database_is_refused(database):
    phases.run(database.engine, "sync")
    database.execute("UPDATE alembic_version SET version_num = '2031_1_contract01'")
    facts = state.read(database.engine).as_facts()
    assert facts["known"] is False and facts["next_step"] == "unknown"
    for phase, args in (("sync", {}), ("sync", {"version": "liberty"})):
        with pytest.raises(UnknownRevision, match="2031_1_contract01.*newer Glance"):
            phases.run(database.engine, phase, **args)


def test_non_glance_database_is_refused(database):
    database.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    with pytest.raises(NotGlanceDatabase, match="not a Glance database"):
        phases.run(database.engine, "sync")
    assert schema_dump.dump(database.engine)["tables"].keys() == {"customers"}


def test_unknown_target_and_downgrade_are_refused(database):
    with pytest.raises(UnknownRevision, match="Unknown revision 'ocata02'"):
        phases.run(database.engine, "sync", version="ocata02")
    phases.run(database.engine, "sync")
    with pytest.raises(DowngradeRefused, match="newer than the requested rocky_contract02"):
        phases.run(database.engine, "sync", version="rocky_contract02")


def test_empty_database_given_to_migrate_or_contract(online_database):
    for phase in ("migrate", "contract"):
        with pytest.raises(PhaseOrderError, match="Run glance_db_expand"):
            phases.run(online_database.engine, phase)
    assert schema_dump.dump(online_database.engine)["tables"] == {}


def test_expand_to_a_release_then_onwards(online_database):
    """A targeted expand stops there; contract to the same release, then the rest."""
    db = online_database
    phases.run(db.engine, "sync", version="queens_contract01")
    phases.run(db.engine, "expand", version="rocky_expand02")
    with pytest.raises(DowngradeRefused):
        phases.run(db.engine, "expand", version="rocky_expand01")
    phases.run(db.engine, "contract", version="rocky_contract02")
    assert differences(db.engine, db.engine_name, "rocky_contract02") == ""
    for phase in ("expand", "migrate", "contract"):
        phases.run(db.engine, phase)
    assert differences(db.engine, db.engine_name, HEAD) == ""
