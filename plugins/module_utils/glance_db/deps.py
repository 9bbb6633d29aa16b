# -*- coding: utf-8 -*-
"""The only place where third-party libraries are imported.

ansible-test's import sanity loads every module_utils file without them, so the
imports are guarded here and a module reports the missing library at run time.
Alembic is imported on first use: reading a database (glance_db_facts) never
needs it, and it is a third of the start-up time.
"""

from __future__ import annotations

import importlib
import importlib.util
import traceback

try:
    import sqlalchemy as sa
    if importlib.util.find_spec("alembic") is None:
        raise ImportError("No module named 'alembic'")
except ImportError:
    sa = None
    IMPORT_ERROR = traceback.format_exc()
    HAS_LIBRARIES = False
else:
    IMPORT_ERROR = None
    HAS_LIBRARIES = True


class _OnFirstUse(object):
    """Stands for ``module.attribute`` and imports the module when first used."""

    def __init__(self, module, attribute=None):
        self._module = module
        self._attribute = attribute

    def __getattr__(self, name):
        target = importlib.import_module(self._module)
        if self._attribute:
            target = getattr(target, self._attribute)
        return getattr(target, name)


op = _OnFirstUse("alembic.op")
MigrationContext = _OnFirstUse("alembic.migration", "MigrationContext")
Operations = _OnFirstUse("alembic.operations", "Operations")

__all__ = ["sa", "op", "MigrationContext", "Operations", "HAS_LIBRARIES", "IMPORT_ERROR"]

# The driver each dialect uses, with the library to name when it is missing.
DRIVERS = {
    "mysql": ("pymysql", "PyMySQL"),
    "postgresql": ("psycopg", "psycopg"),
    "sqlite": ("pysqlite", None),
}


def driver_available(module_name):
    """True when the database driver module can be imported on this host."""
    try:
        importlib.import_module(module_name)
    except ImportError:
        return False
    return True
