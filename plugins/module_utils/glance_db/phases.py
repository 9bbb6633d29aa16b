# -*- coding: utf-8 -*-
"""sync, expand, migrate and contract: each plans from a state, then applies.

A plan is what check mode returns; applying it takes the migration lock, reads
the state again (another run may have done the work), plans again and runs.
"""

from __future__ import annotations

import time

from . import leftovers, stopping
from . import state as db_state
from .data_migrations import MIGRATIONS
from .estimates import Rates, migration_table
from .errors import ClusterNotReady, DowngradeRefused, MissingPrivilege, PhaseOrderError, UnsupportedEngine
from .graph import CONTRACT, EXPAND, GRAPH
from .online import expected_copies, runs_online
from .options import OPTIONS, RunOptions
from .profile import ServerProfile

HEADS = ("heads", "head", "latest")
ONLINE_ENGINES = ("mysql", "sqlite")


class Plan(object):
    """What a phase would do: revisions in order, and data migrations with their rows."""

    def __init__(self, phase, revisions=(), data_migrations=(), contract_revisions=()):
        self.phase = phase
        self.revisions = list(revisions)  # applied before the data migrations
        self.data_migrations = list(data_migrations)  # [(migration module, rows)]
        self.contract_revisions = list(contract_revisions)  # applied after them
        self.leftovers = []  # what a stopped run left (leftovers.read), cleared before the rest
        self.table_copies = []  # MySQL, online: the shadow copies expected, with their room (online.expected_copies)
        self.rates = Rates()  # how the durations are estimated (estimates.py): fixed rates unless sampled

    @property
    def empty(self):
        return not (self.leftovers or self.schema_work)

    @property
    def schema_work(self):
        """Whether there are revisions to apply or rows to migrate."""
        return bool(self.revisions or self.contract_revisions or
                    any(rows for migration, rows in self.data_migrations))

    def rows_after(self, before_rows):
        """alembic_version once this plan is applied to a database whose rows are ``before_rows``."""
        applied = GRAPH.applied_from_rows(before_rows)
        return GRAPH.rows_for(applied | set(self.revisions + self.contract_revisions))

    @property
    def migration_modules(self):
        return [migration for migration, rows in self.data_migrations]

    def as_dict(self):
        return {
            "phase": self.phase,
            "revisions": self.revisions + self.contract_revisions,
            "data_migrations": [{"name": m.name, "rows": rows} for m, rows in self.data_migrations],
            "leftovers": list(self.leftovers),
            "table_copies": list(self.table_copies),
            "durations": self.durations(),
        }

    def durations(self):
        """Each long step's estimated duration (estimates.py), in the order the run takes them:
        the expand side's copies, the data migrations, then the contract side's copies."""
        copies = [{"step": "copy", "revision": c["revision"], "table": c["table"], "rows": c["estimated_rows"],
                   "estimated": self.rates.copy(c["table"], c["estimated_rows"])} for c in self.table_copies]
        contract_side = [c for c in copies if c["revision"] in self.contract_revisions]
        migrations = [{"step": "data migration", "name": m.name, "rows": rows,
                       "estimated": self.rates.migration(m, rows)} for m, rows in self.data_migrations]
        return [c for c in copies if c not in contract_side] + migrations + contract_side

    @property
    def rows_moved(self):
        """Each table whose rows the long steps move, with the most rows one of them moves (what
        the estimates sample)."""
        moved = {}
        for table, rows in ([(c["table"], c["estimated_rows"]) for c in self.table_copies] +
                            [(migration_table(m), rows) for m, rows in self.data_migrations if rows]):
            moved[table] = max(rows, moved.get(table, 0))
        return moved


class Outcome(object):
    def __init__(self, plan, before, after, applied_revisions, migrated, warnings=(), table_copies=()):
        self.plan = plan
        self.msg = None  # set by run(): see message()
        self.warnings = list(dict.fromkeys(warnings))  # once each: a table may be altered often
        self.before = before
        self.after = after
        self.applied_revisions = applied_revisions
        self.migrated = migrated  # [{"name", "migrated", "remaining"(, "flow_control" on Galera)}]
        self.table_copies = list(table_copies)  # [{"table", "alter", "rows", "batches", "seconds"}]
        self.migration_seconds = {}  # data migration -> the seconds it took

    def durations(self):
        """The plan's estimated durations, each with the real ``seconds`` of the step that ran."""
        made = list(self.table_copies)
        found = []
        for step in self.plan.durations():
            step = dict(step)
            if step["step"] == "copy":
                same = [c for c in made if c["table"] == step["table"]]
                if same:
                    made.remove(same[0])
                    step["seconds"] = same[0]["seconds"]
            elif step["name"] in self.migration_seconds:
                step["seconds"] = self.migration_seconds[step["name"]]
            found.append(step)
        return found

    @property
    def changed(self):
        return bool(self.applied_revisions or any(m["migrated"] for m in self.migrated) or self.plan.leftovers)


# ---- guards shared by every phase
def _require_known(state):
    refusal = state.refusal()
    if refusal is not None:
        raise refusal


def _require_online_engine(state, phase):
    if state.engine_name not in ONLINE_ENGINES:
        raise UnsupportedEngine(
            "Rolling upgrades (%s) are supported only on MySQL/MariaDB and SQLite, not on "
            "%s. Upgrade offline with glance_db_sync while the Glance API is stopped."
            % (phase, state.engine_name))


def _explicit(version):
    """Whether ``version`` names a revision (not None nor one of HEADS)."""
    return version is not None and version not in HEADS


def _target(version, *default_heads):
    """The revision a phase aims at and the set it needs; explicit says a version was given.

    Without a version the phase aims at ``default_heads`` (sync: both; the last one is named)."""
    explicit = _explicit(version)
    ids = (GRAPH.get(version).id,) if explicit else default_heads
    return ids[-1], frozenset().union(*[GRAPH.ancestors(i) for i in ids]), explicit


def _refuse_downgrade(state, target, requested, branches):
    """With nothing left to apply, a database beyond the requested version is a downgrade."""
    beyond = [r for r in state.applied - target if GRAPH.get(r).branch in branches]
    if beyond:
        raise DowngradeRefused(
            "The database is at %s, newer than the requested %s. Glance does not support "
            "downgrades; restore a backup taken before the upgrade to go back."
            % (", ".join(state.version_rows), requested))


def _pending_data(state, new_applied):
    """Data migrations whose window is open once ``new_applied`` is reached, with rows."""
    found = []
    for migration in MIGRATIONS:
        opened = migration.opened_by in new_applied
        closed_before = migration.closed_by in state.applied
        if opened and not closed_before:
            rows = state.pending.get(migration.name)
            if rows is None:
                rows = state.rows_before_open.get(migration.name)
            found.append((migration, rows))
    return found


# ---- planning
def plan_sync(state, version=None):
    """Offline: every revision and data migration up to the target."""
    _require_known(state)
    _target_id, target, explicit = _target(version, GRAPH.heads[EXPAND], GRAPH.heads[CONTRACT])
    if target <= state.applied:
        if explicit:
            _refuse_downgrade(state, target, version, (None, EXPAND, CONTRACT))
        return Plan("sync", data_migrations=[(m, r) for m, r in _pending_data(state, state.applied) if r])
    pending = GRAPH.pending(state.applied, target)
    expand_side = [r.id for r in pending if r.branch != CONTRACT]
    contract_side = [r.id for r in pending if r.branch == CONTRACT]
    return Plan("sync", expand_side, _pending_data(state, state.applied | target), contract_side)


def plan_expand(state, version=None):
    _require_online_engine(state, "expand")
    _require_known(state)
    target_id, target, explicit = _target(version, GRAPH.heads[EXPAND])
    if GRAPH.get(target_id).branch == CONTRACT:
        raise PhaseOrderError("%s is a contract revision; use glance_db_contract for it." % target_id)
    if target <= state.applied:
        if explicit:
            _refuse_downgrade(state, target, target_id, (None, EXPAND))
        return Plan("expand")
    revisions = [r.id for r in GRAPH.pending(state.applied, target)]
    if state.engine_name == "mysql" and "ocata_expand01" in revisions:
        _require_trigger_rights(state)
    plan = Plan("expand", revisions)
    plan.table_copies = expected_copies(state, revisions)
    return plan


def _require_trigger_rights(state):
    caps = state.mysql or {}
    if caps.get("can_create"):
        return
    if not caps.get("trigger_privilege"):
        fix = "GRANT TRIGGER ON <glance database>.* TO the Glance database user"
    else:
        fix = ("SET GLOBAL log_bin_trust_function_creators = 1 (binary logging is on, and this "
               "user lacks SUPER)")
    raise MissingPrivilege(
        "Expand must create the triggers insert_visibility and update_visibility, which "
        "this database user cannot do. Fix: %s; or upgrade offline with glance_db_sync." % fix)


def plan_migrate(state):
    _require_online_engine(state, "migrate")
    _require_known(state)
    open_windows = [(m, state.pending[m.name]) for m in MIGRATIONS if m.name in state.pending]
    if open_windows or state.next_step in ("none", "contract"):
        return Plan("migrate", data_migrations=[(m, rows) for m, rows in open_windows if rows])
    raise PhaseOrderError(
        "Data migration cannot run before the database is expanded (it is at %s). "
        "Run glance_db_expand first." % (", ".join(state.version_rows) or "no revision"))


def plan_contract(state, version=None):
    _require_online_engine(state, "contract")
    _require_known(state)
    target_id, target, explicit = _target(version, GRAPH.heads[CONTRACT])
    if GRAPH.get(target_id).branch != CONTRACT:
        raise PhaseOrderError("%s is not a contract revision; use glance_db_expand for it." % target_id)
    if target <= state.applied:
        if explicit:
            _refuse_downgrade(state, target, target_id, (CONTRACT,))
        return Plan("contract")
    missing_expand = [r.id for r in GRAPH.pending(state.applied, target) if r.branch != CONTRACT]
    if missing_expand:
        raise PhaseOrderError(
            "Contract cannot run before expand: %s not applied yet (the database is at %s). "
            "Run glance_db_expand, then glance_db_migrate, then contract."
            % (", ".join(missing_expand), ", ".join(state.version_rows) or "no revision"))
    waiting = [(m.name, state.pending[m.name]) for m in MIGRATIONS
               if state.pending.get(m.name) and m.closed_by in target]
    if waiting:
        raise PhaseOrderError(
            "Contract cannot run while data migrations are pending (%s). Run "
            "glance_db_migrate first." % ", ".join("%s: %d rows" % w for w in waiting))
    plan = Plan("contract", contract_revisions=[r.id for r in GRAPH.pending(state.applied, target)])
    plan.table_copies = expected_copies(state, plan.contract_revisions)
    return plan


def require_galera_ready(state, min_cluster_size=None):
    """Refuse to write through a Galera node that is not Primary and Synced, or a
    cluster smaller than ``min_cluster_size``."""
    node = state.galera
    if node is None:
        return
    name = node["node_name"] or "this node"
    if node["cluster_status"] != "Primary" or node["local_state"] != "Synced":
        raise ClusterNotReady(
            "Galera node %s is %s and %s, not Primary and Synced: a schema change through it could be "
            "lost or stall the cluster. Run through a Synced node of the Primary component (check "
            "with glance_db_facts), or wait until this one has rejoined."
            % (name, node["cluster_status"], node["local_state"]))
    if min_cluster_size and node["cluster_size"] < min_cluster_size:
        raise ClusterNotReady(
            "The Galera cluster of node %s has %d node(s), fewer than galera_min_cluster_size %d: bring "
            "the missing nodes back (their state transfer must finish first), or lower "
            "galera_min_cluster_size." % (name, node["cluster_size"], min_cluster_size))


PLANNERS = {"sync": plan_sync, "expand": plan_expand, "migrate": plan_migrate,
            "contract": plan_contract}


def _plan(phase, state, plan_args, options, sample_on=None):
    """PLANNERS[phase] on ``state``, the plan knowing the server its estimates are for; with
    ``sample_on`` (an engine), estimated from a sample on that server where one can be taken."""
    plan = PLANNERS[phase](state, **plan_args)
    plan.rates = Rates(state.galera is not None, runs_online(phase), options.batch_size)
    if sample_on is not None and state.engine_name == "mysql":
        plan.rates.sample(sample_on, plan.rows_moved)
    return plan


# ---- what the operator reads first
UP_TO_DATE = "Database is up to date. No migrations needed."
# What glance-manage prints when its phase finds nothing to do (glance/cmd/manage.py).
NOTHING_TO_DO = {
    "expand": "Database expansion is up to date. No expansion needed.",
    "migrate": "Database migration is up to date. No migration needed.",
}


def message(outcome, check_mode=False, version=None):
    """The outcome in glance-manage's words for the same outcome; in check mode, what would
    happen. Leftovers of a stopped run, cleared first, are named first."""
    text = _schema_message(outcome, check_mode, version)
    cleared = outcome.plan.leftovers
    if not cleared:
        return text
    if not check_mode:
        return "Cleared what a stopped run left (%s). %s" % (leftovers.describe(cleared), text)
    if not outcome.plan.schema_work:
        return "Check mode, nothing written: %s would clear what a stopped run left (%s), and has " \
               "nothing else to do." % (outcome.plan.phase, leftovers.describe(cleared))
    return "%s would first clear what a stopped run left (%s). %s" % (
        outcome.plan.phase, leftovers.describe(cleared), text)


def _schema_message(outcome, check_mode, version):
    plan, after = outcome.plan, outcome.after
    if not plan.schema_work:  # planned so under the lock too when another run did the work meanwhile
        if after["contract"]["at_head"]:
            return UP_TO_DATE
        if plan.phase in NOTHING_TO_DO:
            return NOTHING_TO_DO[plan.phase]
        return "Database is already at %s. No migrations needed." % _rows_text(after["revisions"])
    explicit = _explicit(version)
    target = version if explicit else GRAPH.heads.get(plan.phase)
    revisions = plan.revisions + plan.contract_revisions
    if check_mode:
        would = []
        if revisions:
            would.append("apply %d revision%s (%s)" % (
                len(revisions), "s" if len(revisions) > 1 else "",
                revisions[0] if len(revisions) == 1 else "%s to %s" % (revisions[0], revisions[-1])))
        rows = sum(rows or 0 for migration, rows in plan.data_migrations)
        if rows:
            would.append("migrate %d rows" % rows)
        return "Your database is not up to date. Check mode, nothing written: %s would %s." % (
            plan.phase, " and ".join(would))
    migrated = sum(m["migrated"] for m in outcome.migrated)
    remaining = sum(m.get("remaining") or 0 for m in outcome.migrated)
    if plan.phase == "migrate" or not outcome.applied_revisions:
        text = "Migrated %d rows" % migrated
        if remaining:
            text += "; %d rows remain: run glance_db_migrate again" % remaining
        return text
    if plan.phase == "sync" and not explicit:
        return "Database is synced successfully."
    return "Upgraded database to: %s, current revision(s): %s" % (
        target, _rows_text(outcome.after["revisions"]))


def _rows_text(rows):
    return ", ".join(rows) or "no revision"


# ---- applying
def settled(state, phase, **plan_args):
    """The outcome of a phase that has nothing to do, judged from ``state``; else None.

    ``state`` may be read without the lock and without SQLAlchemy (state.read_direct):
    run() too decides "nothing to do" before taking the lock, and a state with
    nothing to apply and no rows to migrate stays so (nothing downgrades).
    ``plan_args``: the phase's own (version).
    A Galera node that run() would refuse to write through is left to run().
    """
    if state.galera is not None and not state.galera.get("writable"):
        return None
    if state.foreign:  # perhaps another run's first sync, half done: run() decides under the lock
        return None
    if state.leftovers or state.schema_contradictions:  # cleared, or judged again, by run() under the lock
        return None
    if state.progress is not None:  # a stopped run's record is cleared by run() under the lock
        return None
    plan = PLANNERS[phase](state, **plan_args)
    if not plan.empty:
        return None
    facts = state.as_facts()
    outcome = Outcome(plan, facts, facts, [], [])
    outcome.msg = message(outcome, version=plan_args.get("version"))
    return outcome


def run(engine, phase, check_mode=False, options=None, **args):
    """Plan the phase; unless in check mode, apply it under the migration lock.

    ``options``: the run's options.RunOptions (the module's); ``args``: the phase's
    own (version), and for callers without a RunOptions any run option by name.
    """
    given = dict((name, args.pop(name)) for name in list(args) if name in OPTIONS)
    options = (options or RunOptions()).replace(**given)
    with stopping.on_sigterm():
        outcome = _run(engine, phase, check_mode, options, args)
    outcome.msg = message(outcome, check_mode, args.get("version"))
    return outcome


def _run(engine, phase, check_mode, options, plan_args):
    # Imported here: a run that settles from the direct read never compiles them.
    from .online.tablespace_hold import TablespaceHold
    from .runner import Runner
    from . import progress as run_progress
    hold = TablespaceHold.for_server(options.mysql_datadir, engine.url) if options.mysql_datadir else None
    before_state = db_state.read(engine, options.galera_lock_database)
    if not check_mode:
        require_galera_ready(before_state, options.galera_min_cluster_size)
    before = before_state.as_facts()
    # Tables without alembic_version are also what another run's first sync on MySQL
    # shows while it runs (its DDL commits at once, its version rows come last): such
    # a database is judged again under the lock, and refused there if it stays so.
    # What a stopped run left is cleared under the lock before anything else, even by
    # a phase that has nothing else to do or is then refused.
    # A schema seen contradicting alembic_version may be another run's copy, caught at its swap.
    if check_mode or not (before_state.foreign or before_state.leftovers or before_state.schema_contradictions
                          or before_state.progress):
        # Sampled in check mode; a run samples under the lock, in its own plan below.
        plan = _plan(phase, before_state, plan_args, options, engine if check_mode else None)
        plan.leftovers = list(before_state.leftovers)
        if check_mode or plan.empty:
            return Outcome(plan, before, before, [], [])
    profile = ServerProfile.of_state(before_state)
    progress = run_progress.for_server(engine, profile, options)
    with profile.migration_lock(engine, options) as holder, progress.running(phase, holder):
        current = db_state.read(engine, options.galera_lock_database)  # another run may have finished meanwhile
        require_galera_ready(current, options.galera_min_cluster_size)
        if hold:
            hold.clear_leftovers()
        runner = Runner(engine, options, profile, online=runs_online(phase), tablespace_hold=hold,
                        progress=progress)
        cleared = list(current.leftovers)
        if cleared:
            runner.clear_copy_leftovers()
            current = db_state.read(engine, options.galera_lock_database)
        plan = _plan(phase, current, plan_args, options, engine)
        plan.leftovers = cleared
        progress.planned(plan.revisions + plan.contract_revisions, plan.table_copies,
                         [migration.name for migration in plan.migration_modules])
        if hold and plan.table_copies:  # before anything is changed
            hold.refuse_without_room(max(plan.table_copies, key=lambda c: c["estimated_bytes"]["total"]))
        applied = runner.apply_revisions(plan.revisions, current.applied)
        done = list(plan.revisions)
        migrated, seconds = [], {}
        for migration in plan.migration_modules:
            started = time.monotonic()
            count = runner.run_data_migration(migration, options.batch_size, options.max_rows,
                                              rows_total=dict(plan.data_migrations).get(migration))
            migrated.append({"name": migration.name, "migrated": count})
            seconds[migration.name] = round(time.monotonic() - started, 2)
            if migration.name in runner.flow_control:  # on Galera
                migrated[-1]["flow_control"] = runner.flow_control[migration.name]
        runner.apply_revisions(plan.contract_revisions, applied)
        done += plan.contract_revisions
    after_state = db_state.read(engine, options.galera_lock_database)
    for item in migrated:
        item["remaining"] = after_state.pending.get(item["name"], 0)
    outcome = Outcome(plan, before, after_state.as_facts(), done, migrated, runner.warnings + progress.warnings,
                      runner.table_copies)
    outcome.migration_seconds = seconds
    return outcome
