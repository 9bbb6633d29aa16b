"""plan_sync, plan_expand, plan_migrate and plan_contract on states built here (no database).

Every head, release and order comes from the revision graph: a new release is
covered without editing this file.
"""

from __future__ import annotations

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.data_migrations import MIGRATIONS
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import (
    DowngradeRefused, MissingPrivilege, NotGlanceDatabase, PhaseOrderError, UnknownRevision,
    UnsupportedEngine,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import (
    CONTRACT, EXPAND, GRAPH,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.state import (
    LEGACY_MIGRATE_VERSIONS, LEGACY_REPOSITORY, DatabaseState,
)

ORDER = [r.id for r in GRAPH.order]
EXPAND_SIDE = [r for r in ORDER if GRAPH.get(r).branch != CONTRACT]
CONTRACT_SIDE = [r for r in ORDER if GRAPH.get(r).branch == CONTRACT]
ALL = GRAPH.ancestors(GRAPH.heads[EXPAND]) | GRAPH.ancestors(GRAPH.heads[CONTRACT])
RELEASES = list(dict.fromkeys(GRAPH.get(r).release for r in ORDER))
# The releases with an expand/contract pair: those the online phases reach.
ONLINE_RELEASES = [rel for rel in RELEASES if any(GRAPH.get(r).release == rel for r in CONTRACT_SIDE)]


def of_release(release, branch):
    return [r for r in ORDER if GRAPH.get(r).release == release and GRAPH.get(r).branch == branch]


def through(release):
    """Every revision of ``release`` and of the releases before it (a synced release)."""
    return set(r for r in ORDER if RELEASES.index(GRAPH.get(r).release) <= RELEASES.index(release))


def expanded_to(release):
    """Expanded to ``release``, contracted to the release before it: the migrate window."""
    done = through(release) - set(of_release(release, CONTRACT))
    return done


def make(applied=(), engine="sqlite", tables=None, legacy=None, repository=LEGACY_REPOSITORY,
         pending=None, rows_before_open=None, rows=None, mysql=None):
    rows = GRAPH.rows_for(set(applied)) if rows is None else rows
    if tables is None:
        tables = ["images"] if rows or legacy is not None else []
    state = DatabaseState(engine, "1", "glance", tables, rows, legacy_version=legacy,
                          legacy_repository=repository if legacy is not None else None,
                          mysql_capabilities=mysql)
    state.pending.update(pending or {})
    state.rows_before_open.update(rows_before_open or {})
    return state


def ids(plan):
    return plan.revisions + plan.contract_revisions


def migration(name_part):
    found = [m for m in MIGRATIONS if name_part in m.name]
    assert len(found) == 1
    return found[0]


def test_the_graph_gives_closed_release_states():
    assert RELEASES[0] == GRAPH.get(ORDER[0]).release
    assert RELEASES[-1] == GRAPH.get(GRAPH.heads[CONTRACT]).release
    for release in RELEASES:
        for revision_id in through(release):
            assert GRAPH.ancestors(revision_id) <= through(release)
    for release in ONLINE_RELEASES:
        for revision_id in expanded_to(release):
            assert GRAPH.ancestors(revision_id) <= expanded_to(release)


# ---- empty database
def test_empty_sync_applies_everything_expand_side_first():
    plan = phases.plan_sync(make())
    assert plan.revisions == EXPAND_SIDE and plan.contract_revisions == CONTRACT_SIDE
    # Nothing to count in an empty database: each migration is listed, rows unknown.
    assert plan.data_migrations == [(m, None) for m in MIGRATIONS]
    assert not plan.empty


def test_empty_expand_migrate_contract():
    state = make()
    assert phases.plan_expand(state).revisions == EXPAND_SIDE
    with pytest.raises(PhaseOrderError, match="Run glance_db_expand first"):
        phases.plan_migrate(state)
    with pytest.raises(PhaseOrderError, match="Contract cannot run before expand: .*no revision"):
        phases.plan_contract(state)
    assert state.next_step == "expand" and state.version_rows == []


# ---- legacy sqlalchemy-migrate databases
@pytest.mark.parametrize("legacy", sorted(LEGACY_MIGRATE_VERSIONS))
def test_legacy_migrate_versions(legacy):
    state = make(legacy=legacy, tables=["images", "migrate_version"])
    revision_id = LEGACY_MIGRATE_VERSIONS[legacy]
    assert state.applied == GRAPH.ancestors(revision_id)
    assert state.version_rows == [revision_id]
    plan = phases.plan_sync(state)
    assert ids(plan) == [r for r in EXPAND_SIDE + CONTRACT_SIDE if r not in state.applied]
    assert phases.plan_expand(state).revisions == [r for r in EXPAND_SIDE if r not in state.applied]
    assert state.as_facts()["known"]


@pytest.mark.parametrize("legacy,repository,match", [
    (min(LEGACY_MIGRATE_VERSIONS) - 1, LEGACY_REPOSITORY, "not supported any more: upgrade it to Liberty"),
    (max(LEGACY_MIGRATE_VERSIONS) + 1, LEGACY_REPOSITORY, "in a state this collection does not know"),
    (min(LEGACY_MIGRATE_VERSIONS), "Nova Migrations", "Nova Migrations, version"),
])
def test_legacy_versions_refused(legacy, repository, match):
    state = make(legacy=legacy, repository=repository, tables=["images", "migrate_version"])
    for plan in (phases.plan_sync, phases.plan_expand, phases.plan_contract, phases.plan_migrate):
        with pytest.raises(NotGlanceDatabase, match=match):
            plan(state)


@pytest.mark.parametrize("row", ["ocata01", "pike01"])
def test_legacy_alembic_rows_read_as_contract_revisions(row):
    state = make(rows=[row])
    assert state.version_rows == ["%s_contract01" % row[:-2]]
    assert ids(phases.plan_sync(state)) == [r for r in EXPAND_SIDE + CONTRACT_SIDE if r not in state.applied]


# ---- unknown rows and foreign databases
@pytest.mark.parametrize("rows", [["2999_9_contract01"], [ORDER[0], "someone_elses"]])
def test_unknown_rows_refused_by_every_planner(rows):
    state = make(rows=rows)
    assert state.applied == set()
    for plan in (phases.plan_sync, phases.plan_expand, phases.plan_contract, phases.plan_migrate):
        with pytest.raises(UnknownRevision, match="which this collection does not know"):
            plan(state)
    facts = state.as_facts()
    assert not facts["known"] and facts["next_step"] == "unknown"
    assert facts["revisions"] == sorted(rows)


def test_foreign_tables_refused():
    state = make(tables=["wp_posts", "wp_users"])
    with pytest.raises(NotGlanceDatabase, match=r"holds tables \(wp_posts, wp_users\) but no alembic_version"):
        phases.plan_sync(state)


# ---- each release, synced
@pytest.mark.parametrize("release", RELEASES)
def test_synced_release(release):
    state = make(through(release))
    left = [r for r in EXPAND_SIDE + CONTRACT_SIDE if r not in state.applied]
    plan = phases.plan_sync(state)
    assert ids(plan) == left and plan.revisions == [r for r in left if r in EXPAND_SIDE]
    assert phases.plan_expand(state).revisions == [r for r in EXPAND_SIDE if r not in state.applied]
    # Asking for the release it is at: nothing to do, no downgrade refusal.
    assert phases.plan_sync(state, version=state.version_rows[-1]).empty
    if release == RELEASES[-1]:
        for plan in (phases.plan_sync, phases.plan_expand, phases.plan_contract, phases.plan_migrate):
            assert plan(state).empty
        assert state.next_step == "none" and state.as_facts()["up_to_date"]
    else:
        assert state.next_step == "expand"
        with pytest.raises(PhaseOrderError, match="Contract cannot run before expand"):
            phases.plan_contract(state)


# ---- each release, expanded (the rolling upgrade's middle)
@pytest.mark.parametrize("release", ONLINE_RELEASES)
def test_expanded_release(release):
    state = make(expanded_to(release))
    contract = of_release(release, CONTRACT)
    target = contract[-1]
    assert phases.plan_expand(state, version=of_release(release, EXPAND)[-1]).empty
    assert phases.plan_contract(state, version=target).contract_revisions == contract
    if release == RELEASES[-1]:
        assert phases.plan_migrate(state).empty and state.next_step == "contract"
    else:
        # Without an open window's count, migrate waits for the newest expand.
        assert state.next_step == "expand"
        with pytest.raises(PhaseOrderError, match="Run glance_db_expand first"):
            phases.plan_migrate(state)
    assert ids(phases.plan_sync(state, version=target)) == contract


@pytest.mark.parametrize("name", [m.name for m in MIGRATIONS])
def test_pending_rows_hold_contract_back(name):
    m = migration(name)
    release = GRAPH.get(m.opened_by).release
    state = make(expanded_to(release), pending={name: 7})
    target = of_release(release, CONTRACT)[-1]
    plan = phases.plan_migrate(state)
    assert [(mig.name, rows) for mig, rows in plan.data_migrations] == [(name, 7)]
    with pytest.raises(PhaseOrderError, match="while data migrations are pending \\(%s: 7 rows\\)" % name):
        phases.plan_contract(state, version=target)
    sync = phases.plan_sync(state, version=target)
    assert (m, 7) in sync.data_migrations and sync.contract_revisions == of_release(release, CONTRACT)
    # Drained: contract may go.
    drained = make(expanded_to(release), pending={name: 0})
    assert phases.plan_migrate(drained).empty
    assert phases.plan_contract(drained, version=target).contract_revisions == of_release(release, CONTRACT)


def test_rows_before_open_reported_by_sync():
    m = MIGRATIONS[0]
    before = GRAPH.ancestors(m.opened_by) - {m.opened_by}
    state = make(before, rows_before_open={m.name: 3})
    assert (m, 3) in phases.plan_sync(state).data_migrations


# ---- downgrades
def test_downgrades_refused():
    state = make(ALL)
    older_expand = EXPAND_SIDE[-2]
    older_contract = CONTRACT_SIDE[-2]
    with pytest.raises(DowngradeRefused, match="newer than the requested %s" % ORDER[0]):
        phases.plan_sync(state, version=ORDER[0])
    with pytest.raises(DowngradeRefused, match="newer than the requested %s" % older_expand):
        phases.plan_expand(state, version=older_expand)
    with pytest.raises(DowngradeRefused, match="restore a backup"):
        phases.plan_contract(state, version=older_contract)


def test_expand_target_below_current_contract_is_no_downgrade_of_expand():
    # Contract ahead is none of expand's business; only the expand branch counts.
    state = make(expanded_to(ONLINE_RELEASES[-1]))
    assert phases.plan_expand(state, version=GRAPH.heads[EXPAND]).empty
    assert phases.plan_expand(state, version="heads").empty


# ---- phase-order and engine refusals
def test_phase_order_refusals():
    state = make(GRAPH.ancestors(ORDER[0]))
    with pytest.raises(PhaseOrderError, match="%s is a contract revision; use glance_db_contract"
                       % GRAPH.heads[CONTRACT]):
        phases.plan_expand(state, version=GRAPH.heads[CONTRACT])
    with pytest.raises(PhaseOrderError, match="%s is not a contract revision; use glance_db_expand"
                       % GRAPH.heads[EXPAND]):
        phases.plan_contract(state, version=GRAPH.heads[EXPAND])
    with pytest.raises(PhaseOrderError, match="Contract cannot run before expand: %s" % EXPAND_SIDE[1]):
        phases.plan_contract(state)
    with pytest.raises(PhaseOrderError, match="before the database is expanded \\(it is at %s\\)" % ORDER[0]):
        phases.plan_migrate(state)


def test_unknown_target_names_the_known_revisions():
    with pytest.raises(UnknownRevision, match="Unknown revision '2999_9_expand01'. Known revisions: %s" % ORDER[0]):
        phases.plan_sync(make(), version="2999_9_expand01")


@pytest.mark.parametrize("planner", [phases.plan_expand, phases.plan_migrate, phases.plan_contract])
def test_online_phases_refuse_postgresql(planner):
    with pytest.raises(UnsupportedEngine, match="not on postgresql. Upgrade offline with glance_db_sync"):
        planner(make(engine="postgresql"))
    assert ids(phases.plan_sync(make(engine="postgresql"))) == EXPAND_SIDE + CONTRACT_SIDE


def test_mysql_expand_needs_trigger_rights():
    trigger_migration = migration("community_images")
    state_args = dict(applied=GRAPH.ancestors(trigger_migration.opened_by) - {trigger_migration.opened_by},
                      engine="mysql")
    no_grant = dict(can_create=False, trigger_privilege=False)
    with pytest.raises(MissingPrivilege, match="GRANT TRIGGER ON <glance database>"):
        phases.plan_expand(make(mysql=no_grant, **state_args))
    with pytest.raises(MissingPrivilege, match="log_bin_trust_function_creators"):
        phases.plan_expand(make(mysql=dict(can_create=False, trigger_privilege=True), **state_args))
    assert trigger_migration.opened_by in phases.plan_expand(make(mysql=dict(can_create=True), **state_args)).revisions
    # Past the triggers' revision, the rights are not needed.
    assert phases.plan_expand(make(GRAPH.ancestors(trigger_migration.opened_by), engine="mysql",
                                   mysql=no_grant)).revisions


# ---- alembic_version of every state, through DatabaseState
def test_version_rows_of_every_state():
    for e in EXPAND_SIDE:
        for c in [None] + CONTRACT_SIDE:
            applied = set(GRAPH.ancestors(e)) | (GRAPH.ancestors(c) if c else set())
            state = make(applied)
            assert state.applied == applied
            assert state.version_rows == state.rows == GRAPH.rows_for(applied)
            facts = state.as_facts()
            assert facts["revisions"] == state.rows and facts["known"]
            assert facts["expand"]["current"] == max((r for r in applied if GRAPH.get(r).branch == EXPAND),
                                                     key=ORDER.index, default=None)
            assert facts["contract"]["current"] == (max(
                (r for r in applied if GRAPH.get(r).branch == CONTRACT), key=ORDER.index, default=None))
            # What the planned run would write, once done: the heads' rows.
            done = applied | set(ids(phases.plan_sync(state)))
            assert GRAPH.rows_for(done) == GRAPH.rows_for(ALL)
