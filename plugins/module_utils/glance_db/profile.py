# -*- coding: utf-8 -*-
"""The server profile: what kind of server a run writes to, decided once.

The engine kind, the Galera node's facts (or None), and from them which migration
lock to take. Every module that writes the Glance database (the phases, purge,
metadefs, restore) takes its lock here, with the same lock options, so that they
all contend for one lock: on Galera the cluster's lease in ``galera_lock_database``,
elsewhere the server's own lock (lock.py).
"""

from __future__ import annotations

from . import lock
from . import state as db_state


class ServerProfile(object):

    def __init__(self, engine_name, galera=None):
        self.engine_name = engine_name  # "mysql", "postgresql" or "sqlite"
        self.galera = galera  # state.galera_facts() of the node written through, or None

    @classmethod
    def of_state(cls, state):
        """The profile of a DatabaseState already read (state.read)."""
        return cls(state.engine_name, state.galera)

    @classmethod
    def read(cls, engine):
        """The profile of ``engine``'s server, for a module that reads no DatabaseState."""
        name = engine.url.get_backend_name()
        if name != "mysql":
            return cls(name)
        with engine.connect() as conn:
            return cls(name, db_state.galera_facts(db_state.on_connection(conn)))

    @property
    def on_galera(self):
        return self.galera is not None

    def migration_lock(self, engine, options):
        """The migration lock of this server, as ``options`` (options.RunOptions) ask."""
        return lock.migration_lock(engine, options.lock_timeout, galera=self.on_galera,
                                   lease_seconds=options.galera_lock_ttl,
                                   lock_database=options.galera_lock_database)
