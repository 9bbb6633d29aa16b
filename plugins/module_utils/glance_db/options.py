# -*- coding: utf-8 -*-
"""The options of a run, each default written once.

A module's argument spec takes its defaults from here (``argument_spec``); the run
gets one ``RunOptions`` built from the module's parameters, and that object travels
from the module down to the shadow copy. The module docs repeat each default, as
validate-modules requires; tests/unit/.../test_options.py compares the two.
"""

from __future__ import annotations

# name: (type, default)
OPTIONS = dict(
    # The migration lock, taken by every module that writes the Glance database.
    lock_timeout=("int", 60),
    galera_lock_ttl=("int", 30),
    galera_lock_database=("str", "glance_migration_lock"),
    # Schema changes (sync, expand, migrate, contract).
    ddl_lock_wait_timeout=("int", 10),
    read_timeout=("int", 900),
    mysql_datadir=("path", None),
    galera_min_cluster_size=("int", None),
    # Shadow copies (expand, contract).
    hold_swap=("path", None),
    # Data migrations (migrate, and sync's).
    batch_size=("int", 5000),
    max_rows=("int", None),
)

# The groups a module takes whole.
LOCK_OPTIONS = ("lock_timeout", "galera_lock_ttl", "galera_lock_database")
# Where a run's lease and progress are: what the facts take to read them.
LOCK_DATABASE_OPTIONS = ("galera_lock_database",)
SCHEMA_CHANGE_OPTIONS = ("ddl_lock_wait_timeout", "read_timeout", "mysql_datadir", "galera_min_cluster_size")
SHADOW_COPY_OPTIONS = ("hold_swap",)
DATA_MIGRATION_OPTIONS = ("batch_size", "max_rows")


def argument_spec(names):
    """The AnsibleModule argument spec of ``names``, with the defaults above."""
    spec = {}
    for name in names:
        kind, default = OPTIONS[name]
        spec[name] = dict(type=kind) if default is None else dict(type=kind, default=default)
    return spec


def default(name):
    return OPTIONS[name][1]


class RunOptions(object):
    """What the operator asked of a run; an option not given (or None) takes its default."""

    __slots__ = tuple(OPTIONS)

    def __init__(self, **given):
        unknown = sorted(set(given) - set(OPTIONS))
        if unknown:
            raise TypeError("unknown run option(s): %s" % ", ".join(unknown))
        for name, (_kind, value) in OPTIONS.items():
            setattr(self, name, value if given.get(name) is None else given[name])

    @classmethod
    def from_params(cls, params, names=tuple(OPTIONS)):
        """The run options ``names`` among a module's parameters (purge's own batch_size and
        max_rows, say, are not these)."""
        return cls(**dict((name, params[name]) for name in names if name in params))

    def replace(self, **changed):
        values = dict((name, getattr(self, name)) for name in OPTIONS)
        values.update(changed)
        return RunOptions(**values)
