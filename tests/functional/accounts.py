"""A MySQL/MariaDB user of a test database with only the privileges a test names."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa

# What Glance's user usually holds (ALL ON glance.*) less what a test takes away from it.
USUAL = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "REFERENCES", "TRIGGER",
         "CREATE TEMPORARY TABLES", "LOCK TABLES")


@contextlib.contextmanager
def engine_without(db, prefix, *missing):
    """An engine of a new user of ``db``'s database holding USUAL but ``missing``; dropped afterwards."""
    user = "%s_%s" % (prefix, db.name[-10:])
    grants = ", ".join(p for p in USUAL if p not in missing)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY 'pw'" % user)
        conn.exec_driver_sql("GRANT %s ON %s.* TO '%s'@'127.0.0.1'" % (grants, db.name, user))
    engine = sa.create_engine(db.engine.url.set(username=user, password="pw"), poolclass=sa.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP USER '%s'@'127.0.0.1'" % user)
