# -*- coding: utf-8 -*-
"""What a DDL statement becomes on the online route: its LOCK=NONE form, and its
clause for a shadow copy with whether it rebuilds the table (what route() weighs)."""

from __future__ import annotations

import re

ALTER_TABLE = re.compile(r"\s*ALTER\s+TABLE\s+`?(\w+)`?", re.IGNORECASE)


def lock_none_form(sql):
    """The statement with LOCK=NONE, or None when the statement takes no such clause."""
    sql = sql.strip().rstrip(";")
    head = sql.upper()
    if head.startswith("ALTER TABLE"):
        return sql + ", LOCK=NONE"
    if head.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX")):
        return sql + " LOCK=NONE"
    drop_index = re.match(r"DROP INDEX (\S+) ON (\S+)$", sql, re.IGNORECASE)
    if drop_index:  # MariaDB's DROP INDEX takes no LOCK clause; ALTER TABLE does
        return "ALTER TABLE %s DROP INDEX %s, LOCK=NONE" % (drop_index.group(2), drop_index.group(1))
    return None


def altered_table(sql):
    """The table an ALTER TABLE statement changes, else None."""
    altered = ALTER_TABLE.match(sql)
    return altered.group(1) if altered else None


# The statements a copy can take, each as an ALTER TABLE clause for the copy. Only
# those that rebuild the table or build an index need one; the others (instant
# anyway) join a copy that one of those needs in the same revision, and otherwise
# run as they are. IF [NOT] EXISTS: a resumed run's table (and so its copy) may
# have the change already.
_ALTER = re.compile(r"^\s*ALTER\s+TABLE\s+`?(\w+)`?\s+(.*)$", re.IGNORECASE | re.DOTALL)
_CLAUSES = (
    (re.compile(r"^(MODIFY|CHANGE)\b", re.IGNORECASE), None, True),
    (re.compile(r"^ADD\s+(COLUMN\s+)?(?!INDEX|KEY|UNIQUE|CONSTRAINT|PRIMARY|FOREIGN)", re.IGNORECASE),
     "ADD COLUMN IF NOT EXISTS ", False),
    (re.compile(r"^DROP\s+(COLUMN\s+)?(?!INDEX|KEY|CONSTRAINT|PRIMARY|FOREIGN)", re.IGNORECASE),
     "DROP COLUMN IF EXISTS ", False),
    (re.compile(r"^DROP\s+(INDEX|KEY)\s+", re.IGNORECASE), "DROP INDEX IF EXISTS ", False),
    (re.compile(r"^ADD\s+(UNIQUE\s+)?(INDEX|KEY)\s+", re.IGNORECASE), None, True),
)
_CREATE_INDEX = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(`?\w+`?)\s+ON\s+`?(\w+)`?\s*(\(.*\))\s*$",
                           re.IGNORECASE | re.DOTALL)
_DROP_INDEX = re.compile(r"^\s*DROP\s+INDEX\s+(`?\w+`?)\s+ON\s+`?(\w+)`?\s*$", re.IGNORECASE)


def alteration(sql):
    """(table, ALTER TABLE clause for the copy, whether it needs one) when ``sql`` is a
    statement a copy can take, else None."""
    sql = sql.strip().rstrip(";")
    index = _CREATE_INDEX.match(sql)
    if index:
        return index.group(3), "ADD %sINDEX IF NOT EXISTS %s %s" % (
            index.group(1) or "", index.group(2), index.group(4)), True
    dropped = _DROP_INDEX.match(sql)
    if dropped:
        return dropped.group(2), "DROP INDEX IF EXISTS %s" % dropped.group(1), False
    altered = _ALTER.match(sql)
    if not altered or "," in re.sub(r"\([^()]*\)", "", altered.group(2)):
        return None  # one operation per statement, as Alembic emits them
    table, clause = altered.groups()
    for pattern, replacement, rebuilds in _CLAUSES:
        head = pattern.match(clause)
        if head:
            if replacement and not re.search(r"\bIF\s+(NOT\s+)?EXISTS\b", clause, re.IGNORECASE):
                clause = replacement + clause[head.end():]
            return table, clause, rebuilds
    return None
