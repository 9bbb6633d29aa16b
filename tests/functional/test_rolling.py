"""The expand -> migrate -> contract cycle on real databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, state
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import (
    DataLossRefused, PhaseOrderError, UnsupportedEngine,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.runner import Runner
from parity import HEAD, differences, schema_dump
from seed import location_metadata, seed_pre_ocata, visibilities

NEW_IMAGE = ("INSERT INTO images (id, status, created_at, deleted, min_disk, min_ram, protected{cols}) "
             "VALUES (:id, 'active', CURRENT_TIMESTAMP, :f, 0, 0, :f{vals})")


def _insert(db, iid, **columns):
    cols = "".join(", %s" % c for c in columns)
    vals = "".join(", :%s" % c for c in columns)
    db.execute(NEW_IMAGE.format(cols=cols, vals=vals), id=iid, f=False, **columns)


def _row(db, iid):
    return db.rows("SELECT is_public, visibility FROM images WHERE id = :id", id=iid)[0]


def test_triggers_let_both_releases_write(make_database):
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    phases.run(db.engine, "expand")

    # Release N-1 writes is_public; release N writes visibility: each reads the other's.
    _insert(db, "old-public", is_public=True)
    _insert(db, "old-private", is_public=False)
    _insert(db, "new-public", visibility="public")
    _insert(db, "new-private", visibility="private")
    _insert(db, "new-community", visibility="community")
    assert _row(db, "old-public") == (1, "public")
    assert _row(db, "old-private") == (0, "shared")
    assert _row(db, "new-public") == (1, "public")
    assert _row(db, "new-private") == (0, "private")
    assert _row(db, "new-community") == (0, "community")

    db.execute("UPDATE images SET is_public = 1 WHERE id = 'new-private'")
    assert _row(db, "new-private") == (1, "public")
    db.execute("UPDATE images SET visibility = 'private' WHERE id = 'old-public'")
    assert _row(db, "old-public") == (0, "private")
    db.execute("UPDATE images SET visibility = 'public' WHERE id = 'old-private'")
    assert _row(db, "old-private") == (1, "public")
    db.execute("UPDATE images SET name = 'renamed' WHERE id = 'new-community'")
    assert _row(db, "new-community") == (0, "community")

    failing = [
        lambda: _insert(db, "neither"),
        lambda: _insert(db, "both", is_public=True, visibility="public"),
        lambda: _insert(db, "null-public", is_public=None),
        lambda: db.execute("UPDATE images SET is_public = NULL WHERE id = 'old-public'"),
        lambda: db.execute("UPDATE images SET is_public = 1, visibility = 'shared' WHERE id = 'old-public'"),
        lambda: db.execute("UPDATE images SET visibility = NULL WHERE id = 'new-public'"),
        lambda: db.execute("UPDATE images SET visibility = 'community', is_public = 0 WHERE id = 'new-public'"),
    ]
    for attempt in failing:
        with pytest.raises(sa.exc.DBAPIError, match="Invalid visibility value"):
            attempt()
    assert _row(db, "old-public") == (0, "private")  # the failed updates changed nothing
    assert _row(db, "new-public") == (1, "public")


@pytest.fixture
def pre_ocata(online_database):
    db = online_database
    phases.run(db.engine, "sync", version="mitaka02")
    return db, seed_pre_ocata(db)


def test_expand_migrate_contract_keeps_every_visibility(pre_ocata):
    db, expected = pre_ocata
    expanded = phases.run(db.engine, "expand")
    assert expanded.after["next_step"] == "migrate"
    assert {m["name"] for m in expanded.after["pending_data_migrations"]} == {
        "ocata_migrate01_community_images", "train_migrate01_backend_to_store"}

    migrated = phases.run(db.engine, "migrate", batch_size=7)
    counts = {m["name"]: (m["migrated"], m["remaining"]) for m in migrated.migrated}
    assert counts == {"ocata_migrate01_community_images": (40, 0),
                      "train_migrate01_backend_to_store": (20, 0)}
    assert migrated.after["next_step"] == "contract"

    contracted = phases.run(db.engine, "contract")
    assert contracted.after["up_to_date"] is True
    assert visibilities(db) == expected
    assert location_metadata(db) == sorted([{"store": "fast"}] * 40, key=str)
    assert differences(db.engine, db.engine_name, HEAD) == ""


def test_sync_runs_every_data_migration(database):
    db = database
    phases.run(db.engine, "sync", version="mitaka02")
    expected = seed_pre_ocata(db)
    outcome = phases.run(db.engine, "sync")
    assert {m["name"]: m["migrated"] for m in outcome.migrated} == {
        "ocata_migrate01_community_images": 40, "train_migrate01_backend_to_store": 20}
    assert visibilities(db) == expected
    assert location_metadata(db) == sorted([{"store": "fast"}] * 40, key=str)
    assert differences(db.engine, db.engine_name, HEAD) == ""


def test_phases_out_of_order_are_refused_and_change_nothing(pre_ocata):
    db = pre_ocata[0]
    before = schema_dump.dump(db.engine)
    with pytest.raises(PhaseOrderError, match="Run glance_db_expand first"):
        phases.run(db.engine, "migrate")
    with pytest.raises(PhaseOrderError, match="Run glance_db_expand"):
        phases.run(db.engine, "contract")
    assert schema_dump.dump(db.engine) == before

    phases.run(db.engine, "expand")
    expanded = schema_dump.dump(db.engine)
    with pytest.raises(PhaseOrderError, match="Run glance_db_migrate first"):
        phases.run(db.engine, "contract")
    assert schema_dump.dump(db.engine) == expanded
    assert set(visibilities(db).values()) == {None}


def test_nothing_to_do_writes_nothing(pre_ocata):
    db = pre_ocata[0]
    for phase in ("expand", "migrate", "contract"):
        phases.run(db.engine, phase)
    before = schema_dump.dump(db.engine)
    for phase in ("expand", "migrate", "contract", "sync"):
        outcome = phases.run(db.engine, phase)
        assert not outcome.changed, phase
    assert schema_dump.dump(db.engine) == before


def test_check_mode_plans_rows_and_writes_nothing(pre_ocata):
    db = pre_ocata[0]
    before = schema_dump.dump(db.engine)
    plan = phases.run(db.engine, "sync", check_mode=True).plan.as_dict()
    assert len(plan["revisions"]) == 26
    assert plan["data_migrations"] == [
        {"name": "ocata_migrate01_community_images", "rows": 40},
        {"name": "train_migrate01_backend_to_store", "rows": 20}]
    assert schema_dump.dump(db.engine) == before


def test_max_rows_throttles_and_resumes(pre_ocata):
    db, expected = pre_ocata
    phases.run(db.engine, "expand")
    first = phases.run(db.engine, "migrate", batch_size=5, max_rows=12)
    assert first.migrated[0] == {"name": "ocata_migrate01_community_images",
                                 "migrated": 12, "remaining": 28}
    phases.run(db.engine, "migrate", batch_size=5)
    phases.run(db.engine, "contract")
    assert visibilities(db) == expected


def test_online_phases_refuse_postgresql(make_database):
    db = make_database("postgresql")
    phases.run(db.engine, "sync", version="mitaka02")
    for phase in ("expand", "migrate", "contract"):
        with pytest.raises(UnsupportedEngine, match="glance_db_sync"):
            phases.run(db.engine, phase)


def test_contract_verifies_no_visibility_would_be_lost(make_database):
    """Even past the planning guard (a row written between plan and apply),
    ocata_contract01 refuses to drop is_public while an image has no visibility."""
    db = make_database("sqlite")
    phases.run(db.engine, "sync", version="mitaka02")
    seed_pre_ocata(db)
    phases.run(db.engine, "expand")
    phases.run(db.engine, "migrate")
    # A release N-1 node without triggers (SQLite) writes only is_public.
    _insert(db, "late-old-write", is_public=True)
    applied = state.read(db.engine).applied
    with pytest.raises(DataLossRefused, match="1 image\\(s\\) have no visibility yet"):
        Runner(db.engine).apply_revision("ocata_contract01", applied)
    assert "is_public" in {c["name"] for c in sa.inspect(db.engine).get_columns("images")}
