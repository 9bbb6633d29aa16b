# -*- coding: utf-8 -*-
"""Hold a table's tablespace file while the server rebuilds it (mysql_datadir), so that
the old copy's delete does not happen while writes wait."""

from __future__ import annotations

import contextlib
import os

from ..errors import ConfigurationError
from .inspector import refuse_without_room

HOLD_PREFIX = "#glance_db_hold."  # no .ibd suffix: the server never takes it for a table


class TablespaceHold(object):
    """A second hard link to a table's .ibd file while an ALTER TABLE runs on it.

    An ALTER that rebuilds a table ends under an exclusive metadata lock, which
    queues every write to the table, and the server deleting the old copy's file
    takes about 130 ms of it on a million images. With a second link the
    server's delete only removes a name; this class frees the blocks afterwards,
    when no lock is held. It needs the server's data directory on this host, with
    write access: the module runs on the database server.
    """

    def __init__(self, datadir, database):
        self.datadir = datadir
        self.database = database

    @classmethod
    def for_server(cls, datadir, url):
        """Check the option against the database; raise ConfigurationError if unusable."""
        if url.get_backend_name() != "mysql":
            raise ConfigurationError(
                "mysql_datadir applies to MySQL/MariaDB only; remove it for %s."
                % url.get_backend_name())
        schema_dir = os.path.join(datadir, url.database or "")
        if not url.database or not os.path.isdir(schema_dir):
            raise ConfigurationError(
                "mysql_datadir %s does not hold the files of database %s (no directory %s): give "
                "the server's data directory (SELECT @@datadir) as this host sees it, run the task "
                "on the database server, or leave mysql_datadir unset."
                % (datadir, url.database, schema_dir))
        if not os.access(datadir, os.W_OK | os.X_OK):
            raise ConfigurationError(
                "mysql_datadir %s is not writable by this user: run the task as the server's "
                "user (become_user: mysql) or root, or leave mysql_datadir unset." % datadir)
        return cls(datadir, url.database)

    def refuse_without_room(self, copy):
        """Refuse a run whose largest expected shadow copy (expected_copies in __init__.py) does not fit."""
        refuse_without_room(copy["table"], copy["estimated_bytes"], self.datadir)

    def clear_leftovers(self):
        """Free what a killed run's holds still keep (the caller holds the migration lock)."""
        for name in os.listdir(self.datadir):
            path = os.path.join(self.datadir, name)
            if name.startswith(HOLD_PREFIX + self.database + ".") and os.path.isfile(path):
                os.unlink(path)

    @contextlib.contextmanager
    def holding(self, table, warn):
        tablespace = os.path.join(self.datadir, self.database, table + ".ibd")
        hold = os.path.join(self.datadir, "%s%s.%s" % (HOLD_PREFIX, self.database, table))
        try:
            os.link(tablespace, hold)
        except FileNotFoundError:  # not file-per-table: nothing to hold
            hold = None
        except OSError as exc:  # e.g. the database directory on another file system
            warn("Could not hold the file of table %s during its ALTER TABLE (%s); it ran "
                 "without, so the server deleted the old copy while writes waited."
                 % (table, exc.strerror or exc))
            hold = None
        try:
            yield
        finally:
            if hold:
                os.unlink(hold)
