# -*- coding: utf-8 -*-
"""Which database driver runs a URL: the one written when this host has it, else
the one we run for its database, with a warning or a refusal naming the choices."""

from __future__ import annotations

from .deps import driver_available
from .errors import ConfigurationError, GlanceDbError

# The drivers we run, for each URL scheme an operator may write, tried in order when
# the URL names none. Other names Glance configs commonly carry are replaced, with a
# warning, by the driver we run for them; any other driver name is refused.
BACKENDS = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql",
            "postgres": "postgresql", "sqlite": "sqlite"}
_DRIVERS_RUN = {"mysql": ("pymysql",), "postgresql": ("psycopg", "psycopg2"), "sqlite": ("pysqlite",)}
_REPLACED = {("mysql", "mysqldb"): "MySQLdb, oslo.db's default", ("postgresql", "psycopg2"): "psycopg 2"}
DRIVER_MODULES = {"pymysql": "pymysql", "psycopg": "psycopg", "psycopg2": "psycopg2",
                  "pysqlite": "sqlite3"}
# The library to install when a database's driver is missing.
_LIBRARY = {"mysql": "PyMySQL", "postgresql": "psycopg", "sqlite": None}


class MissingDriver(GlanceDbError):
    """The Python driver for the database is not installed on the managed host."""

    def __init__(self, library):
        self.library = library
        super(MissingDriver, self).__init__(library)


def choose_driver(drivername):
    """(backend, driver, warning): the driver we run for ``backend[+driver]``.

    No driver named: the first one installed. A name Glance configs commonly
    carry (MySQLdb, psycopg2) that is not installed: the one we run, with a
    warning. Any other name: refused, naming the drivers available here.
    """
    written_backend, written = (drivername.split("+", 1) + [""])[:2]
    backend = BACKENDS.get(written_backend)
    if backend is None:
        raise ConfigurationError(
            "Unsupported database '%s'. Glance runs on mysql (MariaDB), postgresql "
            "and sqlite." % drivername)
    run = _DRIVERS_RUN[backend]
    # The driver written, when installed, is the answer: no other driver is imported.
    if written in run and driver_available(DRIVER_MODULES[written]):
        return backend, written, None
    installed = [name for name in run if driver_available(DRIVER_MODULES[name])]
    if written and written not in run and (backend, written) not in _REPLACED:
        raise ConfigurationError(
            "The database driver '%s' of %s:// is unknown or not one this collection runs: for %s "
            "it runs %s. Write %s." % (
                written, drivername, written_backend, _available(backend, installed),
                " or ".join("%s+%s://" % (written_backend, name) for name in installed or run)))
    if not installed:
        raise MissingDriver(_LIBRARY[backend])
    warning = None
    if written:
        warning = ("The database URL names the driver %s (%s), which this host lacks: %s is used "
                   "instead. Write %s+%s:// to say so and silence this warning."
                   % (written, _REPLACED.get((backend, written), written), installed[0],
                      written_backend, installed[0]))
    return backend, installed[0], warning


def _available(backend, installed):
    if installed:
        return "the driver%s installed here: %s" % ("s" if len(installed) > 1 else "", ", ".join(installed))
    return "%s, which is not installed here" % " or ".join(_DRIVERS_RUN[backend])
