# -*- coding: utf-8 -*-
"""A data migration step that moves rows in key-ordered batches.

Each batch is its own short transaction, so application writes never wait long
behind it, and an interrupted run resumes where the data says it stopped.
"""

from __future__ import annotations

from ..deps import sa


class BatchedUpdate(object):
    """``UPDATE table SET column = value WHERE where``, a batch of keys at a time.

    ``pg_type`` names the PostgreSQL type ``value`` must be cast to (an enum
    column takes no text expression there).
    """

    def __init__(self, table, key, where, column, value, pg_type=None):
        self.table = table
        self.key = key
        self.where = where
        self.column = column
        self.value = value
        self.pg_type = pg_type

    def count(self, connection):
        return connection.execute(sa.text(
            "SELECT COUNT(*) FROM %s WHERE %s" % (self.table, self.where))).scalar()

    def next_keys(self, connection, after, limit):
        """The next keys still to migrate, in key order, above ``after``."""
        query = "SELECT %s FROM %s WHERE (%s)" % (self.key, self.table, self.where)
        params = {"limit": limit}
        if after is not None:
            query += " AND %s > :after" % self.key
            params["after"] = after
        query += " ORDER BY %s LIMIT :limit" % self.key
        return [row[0] for row in connection.execute(sa.text(query), params)]

    def apply(self, connection, keys):
        """Migrate the rows with these keys; the WHERE is repeated so a row
        migrated meanwhile (by another run or the application) is left alone."""
        value = self.value
        if self.pg_type and connection.dialect.name == "postgresql":
            value = "CAST((%s) AS %s)" % (value, self.pg_type)
        statement = sa.text(
            "UPDATE %s SET %s = %s WHERE %s IN :keys AND (%s)"
            % (self.table, self.column, value, self.key, self.where)
        ).bindparams(sa.bindparam("keys", expanding=True))
        return connection.execute(statement, {"keys": list(keys)}).rowcount
