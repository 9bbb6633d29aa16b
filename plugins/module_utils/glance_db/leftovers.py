# -*- coding: utf-8 -*-
"""What a stopped run can leave in a MySQL/MariaDB Glance database, and how it is named.

A shadow copy (online/copier.py) works under these names; a run stopped part-way
(killed, its node lost, its disk full) leaves some of them behind. Every module
reads them here: the facts report them, the writing phases clear them under the
migration lock before anything else, purge and metadefs refuse while they stand.
"""

from __future__ import annotations

from .options import default

NEW = "_glance_new_%s"  # the copy of a table being rebuilt
OLD = "_glance_old_%s"  # the table itself, after the swap, until dropped
TRIGGER_PREFIX = "_glance_copy_"
TRIGGER = TRIGGER_PREFIX + "%s_%s"  # event, table: keeps the copy in step
STAND_IN = "_glance_carry_%s"  # a carried trigger's stand-in during the swap
FOREIGN_KEYS = "_glance_fks_%s"  # the definitions of the foreign keys to a table, while they move

_TABLE_PREFIXES = (NEW % "", OLD % "", FOREIGN_KEYS % "")
_TRIGGER_PREFIXES = (TRIGGER_PREFIX, STAND_IN % "")


def _starts(prefixes, column):
    # Not LIKE: its '%' reaches the driver as a format character on one path and not the other.
    return "(%s)" % " OR ".join("LEFT(%s, %d) = '%s'" % (column, len(p), p) for p in prefixes)


QUERY = (
    "SELECT 'table', TABLE_NAME, TABLE_NAME FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = DATABASE() AND " + _starts(_TABLE_PREFIXES, "TABLE_NAME") + " "
    "UNION ALL SELECT 'trigger', TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
    "WHERE TRIGGER_SCHEMA = DATABASE() AND " + _starts(_TRIGGER_PREFIXES, "TRIGGER_NAME") + " "
    "ORDER BY 1, 3, 2"
)


# The migration lock's database (option galera_lock_database) by default: the Galera lease
# (lock.GaleraLease) and a run's progress (progress.py) are read there unless told another.
LEASE_DATABASE = default("galera_lock_database")


def rows_in_lock_database(rows, database, table, columns):
    """``columns`` of this Glance database's row in ``table`` of the lock database ``database``,
    or [] when that table is not there or the user may not read it: then there is nothing to
    report. Shared by the lease (read_lease) and the progress (progress.read_mysql)."""
    # Not a parameter: the direct read's driver takes none; quoted as the server reads names.
    literal = database.replace("\\", "\\\\").replace("'", "''")
    try:
        if not rows("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = '%s'"
                    % (literal, table))[0][0]:
            return []
        return rows("SELECT %s FROM `%s`.`%s` WHERE name = DATABASE()" % (columns, database.replace("`", "``"), table))
    except Exception:  # pylint: disable=broad-except  # no SELECT on the lock database: nothing to report
        return []


def read_lease(rows, database=LEASE_DATABASE):
    """This database's lease on a Galera node in the lock database ``database``, ``{"holder",
    "node", "acquired_at", "expires_at", "stale"}``, or None (no lease, or no right to read it).
    A stale lease outlived its run: its holder stopped renewing it; the next writing run takes
    it over."""
    found = rows_in_lock_database(rows, database, "leases",
                                  "holder, node, acquired_at, expires_at, expires_at <= UTC_TIMESTAMP(6)")
    if not found:
        return None
    holder, node, acquired, expires, expired = found[0]
    return {"holder": holder, "node": node, "acquired_at": "%sZ" % acquired.isoformat(),
            "expires_at": "%sZ" % expires.isoformat(), "stale": bool(expired)}


def table_of(name):
    """The table a leftover belongs to: ``_glance_new_images`` -> ``images``; a table's own name as is."""
    for prefix in _TABLE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def read(rows):
    """The leftovers, as ``[{"kind": "table"|"trigger", "name", "table"}]``; ``rows`` runs a query."""
    return [{"kind": kind, "name": name, "table": table} for kind, name, table in rows(QUERY)]


def describe(found):
    """One line naming the leftovers: ``table _glance_new_images, triggers _glance_copy_delete_images,
    _glance_copy_insert_images on images``."""
    parts = ["table %s" % item["name"] for item in found if item["kind"] == "table"]
    on = {}
    for item in found:
        if item["kind"] == "trigger":
            on.setdefault(item["table"], []).append(item["name"])
    parts += ["trigger%s %s on %s" % ("s" if len(names) > 1 else "", ", ".join(names), table)
              for table, names in sorted(on.items())]
    return ", ".join(parts)


def clearing_module(next_step):
    """The phase module to run to clear them, for a database whose next step is ``next_step``.

    Each of sync, expand, migrate and contract clears them first; migrate changes nothing
    else once expanded, and before expand the operator was expanding."""
    return "glance_db_expand" if next_step == "expand" else "glance_db_migrate"
