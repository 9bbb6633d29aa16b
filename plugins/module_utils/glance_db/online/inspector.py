# -*- coding: utf-8 -*-
"""What the online route reads of a table: its rows, columns, primary key, triggers,
the foreign keys that reference it, its size and the room a copy of it needs.

Reads only (information_schema, SHOW CREATE TABLE, the table's file); every
function takes a connection of the run.
"""

from __future__ import annotations

import os
import re

from ..errors import GlanceDbError
from ..leftovers import STAND_IN, TRIGGER_PREFIX

MIB = 1 << 20


class NoSpaceForCopy(GlanceDbError):
    """The server's data directory lacks the room a copy needs; nothing was started."""


def scalar(conn, sql, *params):
    row = conn.exec_driver_sql(sql, params).first()
    return row[0] if row else None


def names(conn, sql, *params):
    return [row[0] for row in conn.exec_driver_sql(sql, params).fetchall()]


def rows_up_to(conn, table, limit):
    """The rows of ``table``, counted up to ``limit`` and no further."""
    return scalar(conn, "SELECT COUNT(*) FROM (SELECT 1 FROM `%s` LIMIT %d) AS t" % (table, limit))


def exists(conn, table):
    return bool(scalar(conn, "SELECT COUNT(*) FROM information_schema.TABLES "
                             "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", table))


def definition(conn, table):
    return conn.exec_driver_sql("SHOW CREATE TABLE `%s`" % table).one()[1]


def create_copy(conn, table, new):
    """The CREATE TABLE of an empty ``new`` that is what ``CREATE TABLE new LIKE table``
    makes, written from the table's own definition: on Galera a CREATE TABLE ... LIKE
    runs in isolation with a metadata lock on ``table`` and aborts, on every node, the
    transactions that hold it (a child's insert does, through its foreign key); a plain
    CREATE TABLE names only ``new``. As LIKE does, the table's foreign keys are left
    out (their names are the database's, taken) and its AUTO_INCREMENT counter too."""
    lines = definition(conn, table).split("\n")
    head = "CREATE TABLE `%s` (" % table
    if lines[0] != head:  # never seen: then the server's own LIKE
        return "CREATE TABLE `%s` LIKE `%s`" % (new, table)
    body = [line for line in lines[1:-1] if not re.match(r"\s*CONSTRAINT `[^`]+` FOREIGN KEY ", line)]
    body = [line.rstrip(",") + ("," if i < len(body) - 1 else "") for i, line in enumerate(body)]
    tail = re.sub(r" AUTO_INCREMENT=\d+", "", lines[-1])
    return "\n".join(["CREATE TABLE `%s` (" % new] + body + [tail])


def columns(conn, table):
    return names(conn, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                       "DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", table)


def primary_key(conn, table):
    return names(conn, "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE "
                       "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' "
                       "ORDER BY ORDINAL_POSITION", table)


def triggers(conn, table):
    return names(conn, "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE "
                       "EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = %s ORDER BY TRIGGER_NAME",
                 table)


def own_triggers(conn, table):
    """The triggers on ``table`` that are not the copy's own (nor stand-ins)."""
    return [name for name in triggers(conn, table)
            if not name.startswith((TRIGGER_PREFIX, STAND_IN % ""))]


def foreign_keys(conn, source):
    """{(child, name): the constraint's clause after its name, with ``{target}`` for the
    referenced table} of every foreign key that references ``source``."""
    found = conn.exec_driver_sql(
        "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME, "
        "r.UPDATE_RULE, r.DELETE_RULE FROM information_schema.KEY_COLUMN_USAGE k "
        "JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
        "AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME "
        "WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_SCHEMA = DATABASE() "
        "AND k.REFERENCED_TABLE_NAME = %s ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        (source,)).fetchall()
    keys = {}
    for child, name, column, referenced, on_update, on_delete in found:
        entry = keys.setdefault((child, name), ([], [], on_update, on_delete))
        entry[0].append("`%s`" % column)
        entry[1].append("`%s`" % referenced)
    clauses = {}
    for key, (child_columns, referenced, on_update, on_delete) in keys.items():
        rules = "".join(" ON %s %s" % (what, rule) for what, rule in (("DELETE", on_delete), ("UPDATE", on_update))
                        if rule != "RESTRICT")
        clauses[key] = "FOREIGN KEY (%s) REFERENCES `{target}` (%s)%s" % (
            ", ".join(child_columns), ", ".join(referenced), rules)
    return clauses


def space_needed(data, indexes, binary_logging):
    """The bytes a copy of a table of ``data`` and ``indexes`` bytes needs free in the server's
    data directory while it runs: the copy's data and indexes, and, with binary logging,
    the logged row images of every copied row (about the data once more). InnoDB's redo log
    has a fixed size in MariaDB 10.11: it needs no more room (it only wraps sooner)."""
    log = data if binary_logging else 0
    return {"data": data, "indexes": indexes, "binary_log": log, "total": data + indexes + log}


def space_text(needed):
    return "%d MiB (data %d MiB, indexes %d MiB, binary log %d MiB)" % tuple(
        -(-needed[k] // MIB) for k in ("total", "data", "indexes", "binary_log"))


def refuse_without_room(table, needed, datadir):
    """Raise NoSpaceForCopy when the filesystem of ``datadir`` cannot hold ``needed``."""
    disk = os.statvfs(datadir)
    free = disk.f_bavail * disk.f_frsize
    if free < needed["total"]:
        raise NoSpaceForCopy(
            "A shadow copy of table %s needs about %s free in %s, which has %d MiB free: nothing was "
            "started. Free space there (or grow the filesystem), then run again." % (
                table, space_text(needed), datadir, free // MIB))


def room_needed(conn, table, datadir, seen):
    """The room a copy of ``table`` needs (space_needed). The server's sizes are statistics,
    stale for a table just swapped in (a second copy of it in the same run): the largest
    seen in the run is kept in ``seen`` (table -> (data, indexes)), and with the data
    directory (``datadir``, or None) the table's file says how much it holds."""
    data, indexes, binlog = conn.exec_driver_sql(
        "SELECT DATA_LENGTH, INDEX_LENGTH, @@log_bin FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (table,)).one()
    data, indexes = int(data or 0), int(indexes or 0)
    if datadir:
        database = conn.exec_driver_sql("SELECT DATABASE()").scalar()
        try:
            held = os.stat(os.path.join(datadir, database, table + ".ibd")).st_blocks * 512
        except OSError:  # not file-per-table
            held = 0
        data = max(data, held - indexes)
    before = seen.get(table, (0, 0))
    data, indexes = seen[table] = max(data, before[0]), max(indexes, before[1])
    return space_needed(data, indexes, bool(int(binlog)))
