# -*- coding: utf-8 -*-
"""The only place where third-party libraries are imported.

ansible-test's import sanity loads every module_utils file without them, so the
imports are guarded here and a module reports the missing library at run time.
Both are imported on first use: reading an up-to-date database
(glance_db_facts) needs neither, and they are most of the start-up time.
"""

from __future__ import annotations

import importlib
import importlib.util
import traceback


# What a module names when they are missing (Ansible's missing_required_lib).
LIBRARIES = "SQLAlchemy and Alembic"


class MissingLibrary(ImportError):
    """SQLAlchemy or Alembic failed to import on first use: the module turns this
    into Ansible's missing_required_lib message, whichever code path used them."""

    def __init__(self, library, trace):
        super(MissingLibrary, self).__init__("Cannot import %s" % library)
        self.library = library
        self.trace = trace


def missing_libraries():
    """None when SQLAlchemy imports and Alembic is installed, else the import error."""
    try:
        importlib.import_module("sqlalchemy")
        if importlib.util.find_spec("alembic") is None:
            raise ImportError("No module named 'alembic'")
    except ImportError:
        return traceback.format_exc()
    return None


class _OnFirstUse(object):
    """Stands for ``module.attribute`` and imports the module when first used."""

    def __init__(self, module, attribute=None):
        self._module = module
        self._attribute = attribute

    def __getattr__(self, name):
        try:
            target = importlib.import_module(self._module)
        except ImportError:
            raise MissingLibrary(LIBRARIES, traceback.format_exc())
        if self._attribute:
            target = getattr(target, self._attribute)
        value = getattr(target, name)
        self.__dict__[name] = value  # later look-ups skip the import machinery
        return value


sa = _OnFirstUse("sqlalchemy")
op = _OnFirstUse("alembic.op")
MigrationContext = _OnFirstUse("alembic.migration", "MigrationContext")
Operations = _OnFirstUse("alembic.operations", "Operations")
# The revision map: only planning needs it (graph.RevisionGraph.revision_map).
alembic_revision = _OnFirstUse("alembic.script.revision")

__all__ = ["sa", "op", "MigrationContext", "Operations", "alembic_revision", "missing_libraries",
           "MissingLibrary", "LIBRARIES"]


def driver_available(module_name):
    """True when the database driver module can be imported on this host."""
    return driver(module_name) is not None


def driver(module_name):
    """The database driver module, imported, or None when this host lacks it."""
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None
