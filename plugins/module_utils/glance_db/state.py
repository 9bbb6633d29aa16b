# -*- coding: utf-8 -*-
"""Read-only: what a database is, as far as Glance's migrations are concerned.

Nothing here writes, not even to rewrite legacy alembic_version rows.
"""

from __future__ import annotations

import time

from . import connection as db_connection
from . import direct
from . import leftovers as run_leftovers
from . import progress as run_progress
from .data_migrations import MIGRATIONS
from .db_errors import STATE_READ, describe_db_error, with_backoff
from .deps import driver, sa
from .errors import ConnectionFailed, InconsistentVersion, LeftoversFound, NotGlanceDatabase, UnknownRevision
from .graph import CONTRACT, EXPAND, GRAPH, LEGACY_MIGRATE_VERSIONS, LEGACY_REPOSITORY, LEGACY_ROWS

# What `glance-manage db check` exits with for each next step.
CHECK_EXIT_CODES = {"none": 0, "expand": 3, "migrate": 4, "contract": 5}


class DatabaseState(object):
    """A snapshot of one database: its revisions, pending data and engine facts."""

    def __init__(self, engine_name, server_version, database, tables, rows,
                 legacy_version=None, legacy_repository=None, mysql_capabilities=None):
        self.engine_name = engine_name
        self.server_version = server_version
        self.database = database
        self.tables = sorted(tables)
        self.rows = sorted(rows)
        self.legacy_version = legacy_version
        self.legacy_repository = legacy_repository
        self.mysql = mysql_capabilities
        self.galera = None  # on a Galera node: galera_facts()
        self.leftovers = []  # what a stopped run left (leftovers.read), MySQL only
        self.lease = None  # on Galera: the migration lock's lease of this database (leftovers.read_lease)
        self.lock_database = run_leftovers.LEASE_DATABASE  # where the lease and the progress were read
        self.progress = None  # the step a run publishes (progress.py), "running" or "stale"; MySQL and SQLite
        self.schema_contradictions = []  # what the schema shows against alembic_version (_check_markers)
        self.table_sizes = {}  # MySQL: table -> {"rows" (the server's estimate), "data", "indexes"} in bytes
        self.unknown_rows = [r for r in self.rows if LEGACY_ROWS.get(r, r) not in GRAPH.by_id]
        self.applied = set() if self.unknown_rows else GRAPH.applied_from_rows(self._effective_rows())
        self.pending = {}  # data migration name -> rows still to migrate (open windows only)
        self.rows_before_open = {}  # data migration name -> rows it will find once opened

    def _effective_rows(self):
        if self.rows:
            return self.rows
        legacy = LEGACY_MIGRATE_VERSIONS.get(self.legacy_version)
        return [legacy] if legacy else []

    # ---- classification
    @property
    def stopped_run_shown(self):
        """The progress record of a run that stopped stands (stale): a writing module with
        nothing else to do still takes the lock, to clear it."""
        return self.progress is not None and self.progress["state"] == "stale"

    @property
    def is_empty(self):
        return not self.tables

    @property
    def foreign(self):
        """Tables, but no sign of Glance's migration control."""
        return bool(self.tables) and not self.rows and self.legacy_version is None

    def refusal(self):
        """Why no phase may touch this database (the error to raise), or None when it is known.

        The one place that decides it: the phases raise it, the facts' ``known`` is its absence."""
        if self.unknown_rows:
            return UnknownRevision(
                "The database is at revision %s, which this collection does not know: it was "
                "written by a newer Glance release or by another application. Use a newer "
                "openstack_ops.glance, or check that this is the Glance database."
                % ", ".join(self.unknown_rows))
        if self.legacy_version is not None and not self.rows and (
                self.legacy_repository not in (None, LEGACY_REPOSITORY)
                or self.legacy_version not in LEGACY_MIGRATE_VERSIONS):
            if 1 <= self.legacy_version <= 41 and self.legacy_repository == LEGACY_REPOSITORY:
                return NotGlanceDatabase(
                    "The database is at legacy Glance migration %d, which is not supported "
                    "any more: upgrade it to Liberty (42) with the Glance release of that "
                    "time first." % self.legacy_version)
            return NotGlanceDatabase(
                "The database is under sqlalchemy-migrate control (%s, version %s) in a state "
                "this collection does not know; it cannot proceed."
                % (self.legacy_repository, self.legacy_version))
        if self.rows and self.contradictory_rows:
            return InconsistentVersion(
                "alembic_version holds %s, which no sequence of Glance's upgrades leaves (they would "
                "leave %s). Restore the backup taken before the change that wrote it, or set alembic_version "
                "to what the schema is; nothing was changed." % (", ".join(self.rows), ", ".join(self.consistent_rows)))
        if self.schema_contradictions:
            return InconsistentVersion(
                "alembic_version holds %s, but the schema says otherwise: %s. Restore the backup taken "
                "before the change that wrote it, or set alembic_version to what the schema is; nothing "
                "was changed." % (", ".join(self.rows or self._effective_rows()), "; ".join(self.schema_contradictions)))
        if self.foreign:
            return NotGlanceDatabase(
                "The database holds tables (%s) but no alembic_version: it is not a Glance "
                "database under migration control. Point connection at the Glance database, "
                "or at an empty one for a fresh install."
                % ", ".join(self.tables[:5] + (["..."] if len(self.tables) > 5 else [])))
        return None

    @property
    def consistent_rows(self):
        """What alembic_version holds after Glance's upgrades to what its rows say is applied."""
        return GRAPH.rows_for(self.applied)

    @property
    def contradictory_rows(self):
        """Whether the rows name revisions that no run of Glance leaves together (e.g. a head
        and an older revision of the same branch)."""
        return set(LEGACY_ROWS.get(r, r) for r in self.rows) != set(self.consistent_rows)

    @property
    def version_rows(self):
        """alembic_version as real Glance reads it (legacy rows renamed)."""
        return GRAPH.rows_for(self.applied) if self.applied else []

    def current(self, branch):
        return GRAPH.branch_current(self.applied, branch)

    def window_open(self, migration):
        return migration.opened_by in self.applied and migration.closed_by not in self.applied

    @property
    def next_step(self):
        """What `glance-manage db check` would answer: none, expand, migrate or contract."""
        if GRAPH.heads[CONTRACT] in self.applied:
            return "none"
        if GRAPH.heads[EXPAND] not in self.applied:
            return "expand"
        if any(self.pending.values()):
            return "migrate"
        return "contract"

    def as_facts(self):
        """The ``glance_db`` result shared by every module."""
        known = self.refusal() is None
        facts = {
            "engine": self.engine_name,
            "server_version": self.server_version,
            "database": self.database,
            "revisions": self.version_rows if known else list(self.rows),
            # The OpenStack release of each current revision, as its id names it.
            "releases": dict((r, GRAPH.get(r).release) for r in self.version_rows) if known else {},
            "alembic_version_rows": list(self.rows),
            "legacy_migrate_version": self.legacy_version,
            "empty": self.is_empty,
            "known": known,
            "unknown_revisions": list(self.unknown_rows),
            # alembic_version contradicts itself or the schema (refused by every writing module)
            "inconsistent": isinstance(self.refusal(), InconsistentVersion),
            "expand": self._branch_facts(EXPAND),
            "contract": self._branch_facts(CONTRACT),
            "pending_data_migrations": [
                {"name": name, "rows": rows} for name, rows in sorted(self.pending.items()) if rows],
            "triggers": self.mysql,
            "galera": self.galera,
        }
        if known:
            facts["next_step"] = self.next_step
            facts["check_exit_code"] = CHECK_EXIT_CODES[self.next_step]
            facts["up_to_date"] = self.next_step == "none" and not self.leftovers
        else:
            facts.update(next_step="unknown", check_exit_code=None, up_to_date=False)
        facts["run"] = {"leftovers": list(self.leftovers), "lease": self.lease, "progress": self.progress,
                        "msg": self.run_message()}
        return facts

    def run_message(self):
        """What the facts say of a running run (its step), or of a stopped one: its leftovers,
        its stale lease; else None."""
        running = self.progress is not None and self.progress["state"] == "running"
        if running:  # its copy's tables and triggers are its work, not leftovers
            return ("A run is in progress (%s on host %s, pid %s): %s. Its work tables, if any, are not "
                    "leftovers; wait for it (a writing module waits for the migration lock)." % (
                        self.progress.get("phase"), self.progress.get("host"), self.progress.get("pid"),
                        self.progress["line"]))
        said = []
        if self.progress is not None:
            said.append("A run of %s (host %s, pid %s) stopped at %s: it no longer holds the migration "
                        "lock, so what it shows is stale. Run glance_db_%s again to finish it." % (
                            self.progress.get("phase"), self.progress.get("host"), self.progress.get("pid"),
                            run_progress.line(dict(self.progress, throttled=None))[:-len(run_progress.STALE)], self.progress.get("phase")))
        said += [self.leftovers_message()] if self.leftovers else []
        if self.lease and self.lease["stale"]:
            said.append("The migration lock's lease of a run that stopped (node %s, expired %s) stands in %s.leases: "
                        "harmless, the next writing run takes it over once no statement of that run is "
                        "still running." % (self.lease["node"], self.lease["expires_at"], self.lock_database))
        return " ".join(said) or None

    def leftovers_message(self):
        """What a stopped run left, and the module that clears it."""
        return ("A stopped run left %s. Run %s: it clears them under the migration lock before "
                "anything else (so do glance_db_sync, _expand, _migrate and _contract)."
                % (run_leftovers.describe(self.leftovers),
                   run_leftovers.clearing_module(self.next_step if self.refusal() is None else None)))

    def _branch_facts(self, branch):
        current = self.current(branch)
        return {"current": current, "head": GRAPH.heads[branch],
                "at_head": current == GRAPH.heads[branch],
                "release": GRAPH.get(current).release if current else None,
                "head_release": GRAPH.get(GRAPH.heads[branch]).release}


def read(engine, lock_database=None):
    """Inspect the database behind ``engine`` without writing anything. ``lock_database``:
    where a run's lease and progress are (option galera_lock_database; by default its default)."""
    if missing_sqlite_file(engine.url):
        return _missing_sqlite_state(engine.url.database)
    # On Galera, another run's schema change (in isolation, on every node) aborts a
    # read that holds a table's metadata lock: error 1213. Read again.
    return with_backoff(lambda: _read_once(engine, lock_database), STATE_READ, time.sleep)


def _read_once(engine, lock_database):
    with engine.connect() as conn:
        try:
            return _read(_SqlAlchemyQueries(conn), lock_database=lock_database)
        finally:
            conn.rollback()


def read_direct(raw_url, lock_database=None):
    """The state read with the database driver alone, or None.

    SQLAlchemy's import is most of a short run's time, and a database at the
    heads needs only a few plain queries. None (read() then decides, reporting
    any error) when the URL needs SQLAlchemy's dialect to be opened, the driver
    is missing, a data migration has rows to count, or a query fails. A server
    that refuses or never answers is reported at once (trying again through
    SQLAlchemy would only wait as long a second time).
    """
    url = direct.parse_plain_url(raw_url)
    if url is None:
        return None
    if url.backend == "sqlite" and db_connection.sqlite_file_missing(url.database):
        return _missing_sqlite_state(url.database)
    try:
        conn = direct.connect_direct(url)
    except Exception as exc:  # the server refused or never answered: SQLAlchemy would meet the same
        raise ConnectionFailed(describe_db_error(exc, url))
    return direct.read_with(conn, url, lambda queries: _read(queries, lock_database=lock_database))


def read_progress_direct(raw_url, lock_database=None):
    """Only the step a run publishes (progress.py), or None, read with the database driver
    alone: cheap enough to poll while a run lasts (glance_db_wait). Raises NeedsSqlAlchemy
    when the URL needs SQLAlchemy's dialect to be opened (read() then reads everything)."""
    url = direct.parse_plain_url(raw_url)
    if url is None:
        raise direct.NeedsSqlAlchemy("the URL")
    if url.backend == "sqlite":
        return run_progress.read_sqlite(url.database)
    if url.backend != "mysql":
        return None  # not published on PostgreSQL (docs/progress.md)
    try:
        conn = direct.connect_direct(url)
    except Exception as exc:  # the server refused or never answered
        raise ConnectionFailed(describe_db_error(exc, url))
    if conn is None:
        raise direct.NeedsSqlAlchemy("the driver")
    try:
        queries = direct.DriverQueries(conn, url)
        galera = galera_facts(queries) is not None
        lock_database = lock_database or run_leftovers.LEASE_DATABASE
        lease = run_leftovers.read_lease(queries.rows, lock_database) if galera else None
        return run_progress.read_mysql(queries.rows, lock_database, galera=galera, lease=lease)
    finally:
        conn.rollback()
        conn.close()


def _missing_sqlite_state(path):
    """A SQLite file not there yet: an empty database (connecting would create it).
    sqlite3 is imported here, so a MySQL or PostgreSQL read never loads it."""
    return DatabaseState("sqlite", driver("sqlite3").sqlite_version, path, [], [])


def missing_sqlite_file(url):
    path = url.database
    return (url.get_backend_name() == "sqlite" and path not in (None, "", ":memory:")
            and not path.startswith("file:") and db_connection.sqlite_file_missing(path))


class _SqlAlchemyQueries(object):
    """The few queries a read needs, on a SQLAlchemy connection."""

    def __init__(self, conn):
        self.conn = conn
        self.dialect = conn.dialect.name
        self.database = conn.engine.url.database

    def table_names(self):
        return sa.inspect(self.conn).get_table_names()

    def rows(self, sql):
        return [tuple(row) for row in self.conn.execute(sa.text(sql))]

    def count_rows(self, migration):
        """Rows a data migration still has to move."""
        return count_rows(self.conn, migration)

    def rows_before_open(self, migration):
        """Rows a data migration will find once its window opens."""
        return self.rows(migration.ROWS_BEFORE_OPENED)[0][0]


def require_untouched_by_a_stopped_run(queries):
    """Refuse, for a module that writes Glance's rows but not its schema (purge, metadefs),
    a database every phase refuses, or one where a stopped run's leftovers stand: those
    modules do not clear them. ``queries``: on_connection() or direct.DriverQueries."""
    state = _read(queries, count=False)
    refusal = state.refusal()
    if refusal is not None:
        raise refusal
    if state.leftovers:
        raise LeftoversFound(state.leftovers_message())
    return state


def on_connection(conn):
    """The queries a read makes, on a SQLAlchemy connection."""
    return _SqlAlchemyQueries(conn)


def _read(queries, count=True, lock_database=None):
    """The state; ``count``: count the rows of open data migrations (else none pending);
    ``lock_database``: where a run's lease and progress are (read())."""
    dialect = queries.dialect
    tables = queries.table_names()
    rows = []
    if "alembic_version" in tables:
        rows = [row[0] for row in queries.rows("SELECT version_num FROM alembic_version")]
    legacy_version = legacy_repository = None
    if "migrate_version" in tables:
        records = queries.rows("SELECT repository_id, version FROM migrate_version")
        if records:
            legacy_repository, legacy_version = records[0][0], int(records[0][1])
    state = DatabaseState(
        engine_name=dialect,
        server_version=queries.rows(SERVER_VERSION[dialect])[0][0],
        database=queries.database,
        tables=[t for t in tables if t != "alembic_version"],
        rows=rows,
        legacy_version=legacy_version,
        legacy_repository=legacy_repository,
        mysql_capabilities=mysql_trigger_capabilities(queries) if dialect == "mysql" else None,
    )
    if not state.unknown_rows and state.applied:
        state.schema_contradictions = _check_markers(queries, state)
    if dialect == "mysql":
        state.lock_database = lock_database or state.lock_database
        state.galera = galera_facts(queries)
        state.leftovers = run_leftovers.read(queries.rows)
        if state.galera is not None:
            state.lease = run_leftovers.read_lease(queries.rows, state.lock_database)
        state.progress = run_progress.read_mysql(queries.rows, state.lock_database,
                                                 galera=state.galera is not None, lease=state.lease)
        state.table_sizes = dict((name, {"rows": int(rows or 0), "data": int(data or 0), "indexes": int(indexes or 0)})
                                 for name, rows, data, indexes in queries.rows(TABLE_SIZES))
    elif dialect == "sqlite":
        state.progress = run_progress.read_sqlite(queries.database)
    for migration in MIGRATIONS if count else ():
        if state.window_open(migration):
            state.pending[migration.name] = queries.count_rows(migration)
        elif state.applied and migration.closed_by not in state.applied:
            state.rows_before_open[migration.name] = queries.rows_before_open(migration)
    return state


TABLE_SIZES = ("SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES "
               "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'")

COLUMNS = {
    "mysql": "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
             "AND TABLE_NAME IN (%s)",
    "postgresql": "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
                  "current_schema() AND table_name IN (%s)",
    "sqlite": "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p "
              "WHERE m.type = 'table' AND m.name IN (%s)",
}


def _marker_of(revision_id):
    """The schema marker of the newest revision at or below ``revision_id`` on its branch line
    that declares one (most revisions change nothing a marker could show)."""
    while revision_id:
        revision = GRAPH.get(revision_id)
        marker = getattr(revision.script, "schema_marker", None)
        if marker:
            return revision_id, marker
        revision_id = revision.down[0] if revision.down else None
    return None


def _check_markers(queries, state):
    """What the schema shows against the markers of alembic_version's revisions, in one query:
    ``["ocata_contract01 dropped images.is_public, which the database has"]``."""
    markers = [m for m in (_marker_of(row) for row in state.consistent_rows) if m]
    tables = set(state.tables)
    wanted = sorted(set(name.split(".")[0] for _rid, (name, _present) in markers if "." in name) & tables)
    columns, seen = set(), set()
    if wanted:
        found = queries.rows(COLUMNS[queries.dialect] % ", ".join("'%s'" % table for table in wanted))
        columns, seen = set("%s.%s" % row for row in found), set(row[0] for row in found)
    found = []
    for revision_id, (name, present) in markers:
        if "." in name and name.split(".")[0] not in seen:
            continue  # the table went between the two reads (another run's copy, swapped): not judged
        there = name in (columns if "." in name else tables)
        if there != present:
            found.append("%s %s %s, which the database %s" % (
                revision_id, "added" if present else "dropped", name, "lacks" if present else "has"))
    return found


def count_rows(conn, migration):
    """Rows a data migration still has to move."""
    return sum(step.count(conn) for step in migration.STEPS)


SERVER_VERSION = {
    "sqlite": "SELECT sqlite_version()",
    "postgresql": "SHOW server_version",
    "mysql": "SELECT version()",
}

# The grantee as information_schema writes it: 'user'@'host'.
_GRANTEE = ("CONCAT(\"'\", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \"'@'\", "
            "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")")


def mysql_trigger_capabilities(queries):
    """Whether this user can create Ocata's triggers (binary logging needs more)."""
    binlog, trust = queries.rows(
        "SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators")[0]
    privileges = set(row[0] for row in queries.rows(
        "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s "
        "UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
        "WHERE GRANTEE = %s AND TABLE_SCHEMA = DATABASE()" % (_GRANTEE, _GRANTEE)))
    has_trigger = "TRIGGER" in privileges
    has_super = "SUPER" in privileges
    binlog, trust = bool(int(binlog)), bool(int(trust))
    return {
        "binary_logging": binlog,
        "log_bin_trust_function_creators": trust,
        "trigger_privilege": has_trigger,
        "super_privilege": has_super,
        "can_create": has_trigger and (not binlog or trust or has_super),
    }


_GALERA_STATUS = ("wsrep_cluster_size", "wsrep_cluster_status", "wsrep_local_state_comment",
                  "wsrep_ready", "wsrep_flow_control_paused", "wsrep_cluster_state_uuid",
                  "wsrep_incoming_addresses")
_GALERA_VARIABLES = ("wsrep_on", "wsrep_node_name", "wsrep_OSU_method", "wsrep_sync_wait")


def galera_facts(queries):
    """This node's view of its Galera cluster, or None when the server is no Galera node."""
    variables = dict((name.lower(), value) for name, value in queries.rows(
        "SHOW SESSION VARIABLES WHERE Variable_name IN (%s)"
        % ", ".join("'%s'" % name for name in _GALERA_VARIABLES)))
    if str(variables.get("wsrep_on", "OFF")).upper() != "ON":
        return None
    status = dict((name.lower(), value) for name, value in queries.rows(
        "SHOW GLOBAL STATUS WHERE Variable_name IN (%s)"
        % ", ".join("'%s'" % name for name in _GALERA_STATUS)))
    if not status.get("wsrep_cluster_size"):
        return None  # wsrep_on without a provider: a plain server
    cluster_status = status.get("wsrep_cluster_status")
    local_state = status.get("wsrep_local_state_comment")
    return {
        "cluster_size": int(status["wsrep_cluster_size"]),
        "cluster_status": cluster_status,
        "cluster_state_uuid": status.get("wsrep_cluster_state_uuid"),
        "local_state": local_state,
        "ready": str(status.get("wsrep_ready", "")).upper() == "ON",
        "writable": cluster_status == "Primary" and local_state == "Synced",
        "node_name": variables.get("wsrep_node_name"),
        "incoming_addresses": [a for a in (status.get("wsrep_incoming_addresses") or "").split(",") if a],
        "osu_method": variables.get("wsrep_osu_method"),
        "flow_control_paused": float(status.get("wsrep_flow_control_paused") or 0.0),
        "sync_wait": int(variables.get("wsrep_sync_wait") or 0),
    }
