# -*- coding: utf-8 -*-
"""GlanceDbModule: what the modules share.

The connection options, the missing-library check, check and diff handling, and
the mapping of every error to one readable, password-free ``msg``. A module
subclasses it, adds its own options and names its phase in ``run()``.
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from . import connection as db_connection
from . import state as db_state
from .db_errors import check_connection, describe_db_error
from .deps import MissingLibrary, missing_libraries, sa
from .drivers import MissingDriver
from .errors import GlanceDbError
from .options import (DATA_MIGRATION_OPTIONS, LOCK_OPTIONS, SCHEMA_CHANGE_OPTIONS, SHADOW_COPY_OPTIONS, RunOptions,
                      argument_spec)


def connection_argument_spec():
    """The options every module takes to find the database (see the doc fragment)."""
    return dict(
        connection=dict(type="str", no_log=True),
        config_file=dict(type="list", elements="path"),
        config_dir=dict(type="path"),
    )


# The run options (options.py) of the modules that change the schema: sync, expand, contract
# (migrate adds DATA_MIGRATION_OPTIONS). Purge, metadefs and restore take LOCK_OPTIONS alone.
PHASE_OPTIONS = LOCK_OPTIONS + SCHEMA_CHANGE_OPTIONS
MIGRATE_OPTIONS = PHASE_OPTIONS + DATA_MIGRATION_OPTIONS
# expand and contract, the phases that copy tables, also take hold_swap.
COPYING_PHASE_OPTIONS = PHASE_OPTIONS + SHADOW_COPY_OPTIONS


class GlanceDbModule(object):
    """Base class: subclasses set ``argument_spec`` and implement ``run()``."""

    argument_spec = {}
    module_kwargs = {}
    # The run options (options.py) the module takes, with their defaults: LOCK_OPTIONS for every
    # module that writes the Glance database, PHASE_OPTIONS for those that change its schema.
    run_options = ()
    # A module that only reads the state may skip SQLAlchemy (read_direct).
    reads_directly = False
    # A phase module first asks the driver alone whether there is anything to
    # do, and connects through SQLAlchemy only when there is (run_phase).
    settles_directly = False
    # expand and contract: the result names the tables rebuilt through a shadow copy.
    returns_table_copies = False

    def __init__(self):
        spec = self.full_argument_spec()
        self.ansible = AnsibleModule(
            argument_spec=spec,
            mutually_exclusive=[("connection", "config_file")],
            required_one_of=[("connection", "config_file")],
            supports_check_mode=True,
            **self.module_kwargs
        )
        self.params = self.ansible.params
        self.options = RunOptions.from_params(self.params, self.run_options)
        self.redact = db_connection.Redactor()
        self.redact.add_url(self.params.get("connection"))
        self.raw_url = None
        self.url_source = None  # "connection", or the config file that set it
        self.engine = None

    @classmethod
    def full_argument_spec(cls):
        spec = connection_argument_spec()
        spec.update(argument_spec(cls.run_options))
        spec.update(cls.argument_spec)
        return spec

    # ---- to be used by subclasses
    def run(self):
        raise NotImplementedError

    def run_phase(self, phase, **plan_args):
        """Plan (check mode) or apply a phase, and exit with the standard result."""
        from . import phases  # here: a module that only reads never compiles the writers
        outcome = None
        if self.settles_directly and not (self.options.mysql_datadir or
                                          self.options.galera_min_cluster_size):
            # Nothing to do needs neither SQLAlchemy nor the lock (phases.settled);
            # mysql_datadir and the cluster's size are checked by the full path.
            state = db_state.read_direct(self.raw_url, self.options.galera_lock_database)
            if state is not None:
                outcome = phases.settled(state, phase, **plan_args)
        if outcome is None:
            self.connect()
            outcome = phases.run(self.engine, phase, check_mode=self.ansible.check_mode,
                                 options=self.options, **plan_args)
        for warning in outcome.warnings:
            self.ansible.warn(self.redact(warning))
        changed = outcome.changed if not self.ansible.check_mode else not outcome.plan.empty
        plan = outcome.plan.as_dict()
        estimated = plan.pop("durations")
        # What the run leaves (another run may have done the work under the lock meanwhile).
        plan["revisions_after"] = (_planned_after(outcome) if self.ansible.check_mode
                                   else outcome.after)["revisions"]
        result = dict(
            changed=changed,
            msg=outcome.msg,
            plan=plan,
            revisions_applied=outcome.applied_revisions,
            data_migrations=outcome.migrated,
            glance_db=outcome.after,
            # Each copy's and data migration's estimated duration; after a run, with its real seconds.
            durations=estimated if self.ansible.check_mode else outcome.durations(),
        )
        if self.returns_table_copies:
            result["table_copies"] = outcome.table_copies
        if self.ansible._diff:
            result["diff"] = dict(before=_version_text(outcome.before),
                                  after=_version_text(outcome.after if not self.ansible.check_mode
                                                      else _planned_after(outcome)))
        self.exit(result)

    def read_state(self):
        """The database's state; with reads_directly, the driver alone is tried first. A run's
        lease and progress are read in the module's galera_lock_database (the default without it)."""
        if self.reads_directly:
            state = db_state.read_direct(self.raw_url, self.options.galera_lock_database)
            if state is not None:
                return state
        self.connect()
        return db_state.read(self.engine, self.options.galera_lock_database)

    def require_libraries(self):
        """Fail with Ansible's standard message when SQLAlchemy or Alembic is missing."""
        error = missing_libraries()
        if error:
            self.ansible.fail_json(msg=missing_required_lib("SQLAlchemy and Alembic"),
                                   exception=error)

    def connect(self):
        """Make the SQLAlchemy engine (once) and check that the database answers."""
        if self.engine is not None:
            return
        self.require_libraries()
        url = db_connection.resolve_url(self.raw_url, redactor=self.redact)
        self.engine = db_connection.create_engine(url, read_timeout=self.options.read_timeout)
        if not db_state.missing_sqlite_file(url):
            check_connection(self.engine, self.redact)

    def exit(self, result):
        if "glance_db" in result:
            result["glance_db"]["connection_source"] = self.url_source
        self.ansible.exit_json(**_redacted(result, self.redact))

    # ---- the frame around run()
    def __call__(self):
        if not (self.reads_directly or self.settles_directly):
            self.require_libraries()
        try:
            self.raw_url, self.url_source = db_connection.url_and_source(
                self.params["connection"], self.params["config_file"], self.params["config_dir"],
                redactor=self.redact)
            warning = db_connection.driver_warning(self.raw_url)
            if warning:
                self.ansible.warn(warning)
            if not (self.reads_directly or self.settles_directly):
                self.connect()
            self.run()
        except SystemExit:
            # exit_json and fail_json end the run; the clauses below would import
            # SQLAlchemy just to look at it.
            raise
        except MissingDriver as exc:
            self.ansible.fail_json(msg=missing_required_lib(exc.library))
        except MissingLibrary as exc:  # first used below require_libraries (planning a phase)
            self.ansible.fail_json(msg=missing_required_lib(exc.library), exception=exc.trace)
        except GlanceDbError as exc:
            self.fail(str(exc))
        except Exception as exc:  # anything else still gets one readable, redacted line
            # A driver error, or one raised while handling one (SQLAlchemy refusing a statement
            # on a connection the server dropped, a reconnect refused after a lost connection):
            # the first driver error says what happened.
            # Without an engine there is no driver error, and SQLAlchemy may be missing.
            behind = _database_error_behind(exc) if self.engine is not None else None
            if behind is not None:
                self.fail(describe_db_error(behind, self.engine.url))
            first_line = (str(exc).strip().splitlines() or [""])[0]
            self.fail("Unexpected error: %s: %s" % (type(exc).__name__, first_line),
                      exception=traceback.format_exc())
        finally:
            if self.engine is not None:
                self.engine.dispose()

    def fail(self, msg, **extra):
        extra = dict((k, self.redact(v)) for k, v in extra.items())
        self.ansible.fail_json(msg=self.redact(msg), **extra)


def _database_error_behind(exc):
    """The first driver error in ``exc``'s chain (``exc`` itself, or one it was raised while
    handling), or None."""
    found = None
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sa.exc.DBAPIError):
            found = exc
        exc = exc.__cause__ or exc.__context__
    return found


def _redacted(value, redact):
    """``value`` with every string in it redacted (results, diff)."""
    if isinstance(value, dict):
        return dict((key, _redacted(item, redact)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_redacted(item, redact) for item in value]
    return redact(value) if isinstance(value, str) else value


def _version_text(facts):
    return ", ".join(facts.get("revisions") or []) or "(empty database)"


def _planned_after(outcome):
    """The version a check-mode run would leave, in the shape of facts['revisions']."""
    return {"revisions": outcome.plan.rows_after(outcome.before.get("revisions") or [])}
