# -*- coding: utf-8 -*-
"""The only place where third-party libraries are imported.

ansible-test's import sanity loads every module_utils file without them, so the
imports are guarded here and a module reports the missing library at run time.
"""

from __future__ import annotations

import traceback

try:
    import sqlalchemy as sa
    from alembic import op
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
except ImportError:
    sa = op = MigrationContext = Operations = None
    IMPORT_ERROR = traceback.format_exc()
    HAS_LIBRARIES = False
else:
    IMPORT_ERROR = None
    HAS_LIBRARIES = True

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
        __import__(module_name)
    except ImportError:
        return False
    return True
