# -*- coding: utf-8 -*-
"""One migrator at a time: a database-level lock held for a whole writing run.

MySQL/MariaDB: GET_LOCK on a connection kept open; PostgreSQL: a session
advisory lock; SQLite: flock on a file beside the database, there only while a
run holds the lock. Runs started
together serialize; the later ones then find nothing to do.

Galera: GET_LOCK is local to one node, so the lock is a lease row in a table
the cluster replicates, outside the Glance database (GaleraLease; the
specification is in docs/galera.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import uuid

from .db_errors import (DB_ACCESS_DENIED, DEADLOCK, DUPLICATE_KEY, LOCK_WAIT_TIMEOUT, NO_SUCH_DATABASE,
                        NO_SUCH_TABLE, SPECIFIC_ACCESS_DENIED, TABLE_ACCESS_DENIED, code_of)
from . import connection as db_connection
from .deps import sa
from .errors import LockLost, LockTimeout, MissingPrivilege
from .options import default

LOCK_NAME = "openstack_ops.glance.db"
# PostgreSQL advisory locks take a 64-bit key; this one is ours (advisory locks
# are per database, so one constant serves every Glance database on a server).
PG_LOCK_KEY = 0x676C616E6365  # "glance"
POLL_SECONDS = 0.1


def _timeout_error(seconds):
    return LockTimeout(
        "Another run has held the Glance migration lock for more than %s seconds. "
        "Wait for it to finish (or raise lock_timeout), then run again." % seconds)


@contextlib.contextmanager
def migration_lock(engine, timeout, galera=False, lease_seconds=None, lock_database=None):
    """Hold the migration lock for the duration of the block.

    ``galera``: the server is a Galera node (state.galera), so the lock is a
    replicated lease (see GaleraLease) instead of GET_LOCK. The modules take it
    through profile.ServerProfile.migration_lock, which decides ``galera``.

    Yields the holder, by which a reader tells whether a run still holds the lock
    (progress.py): the lease's token on Galera, the connection id holding GET_LOCK on
    MySQL, the backend pid holding the advisory lock on PostgreSQL; None on SQLite.
    """
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        with _file_lock(engine.url.database, timeout):
            yield None
        return
    if backend == "mysql" and galera:
        lease = GaleraLease(engine, lease_seconds or default("galera_lock_ttl"),
                            lock_database or default("galera_lock_database"))
        lease.acquire(timeout)
        try:
            yield lease.token
        finally:
            lease.release()
        return
    with engine.connect() as conn:
        if backend == "mysql":
            got = conn.execute(sa.text("SELECT GET_LOCK(:n, :t)"),
                               {"n": "%s.%s" % (LOCK_NAME, engine.url.database), "t": timeout}).scalar()
            if got != 1:
                raise _timeout_error(timeout)
            release = "SELECT RELEASE_LOCK(:n)"
            params = {"n": "%s.%s" % (LOCK_NAME, engine.url.database)}
        else:
            _poll(lambda: conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                       {"k": PG_LOCK_KEY}).scalar(), timeout)
            release = "SELECT pg_advisory_unlock(:k)"
            params = {"k": PG_LOCK_KEY}
        holder = conn.execute(sa.text("SELECT CONNECTION_ID()" if backend == "mysql"
                                      else "SELECT pg_backend_pid()")).scalar()
        conn.commit()
        try:
            yield holder
        finally:
            conn.execute(sa.text(release), params)
            conn.commit()


def _poll(try_once, timeout):
    deadline = time.monotonic() + timeout
    while not try_once():
        if time.monotonic() >= deadline:
            raise _timeout_error(timeout)
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def _file_lock(database, timeout):
    """flock on DATABASE.migration-lock, removed again by the run that holds it.

    The holder unlinks the file before it unlocks, so a run that was waiting on
    that file may get a lock on a file no longer at the path: after locking,
    each run checks that the path still names the file it locked, and starts
    again otherwise. Whoever holds a lock on the file at the path holds the lock.
    """
    if not database or database == ":memory:":
        yield  # a private in-memory database has no other writer
        return
    path = os.path.abspath(database) + ".migration-lock"
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _poll(lambda: _try_flock(fd), max(0.0, deadline - time.monotonic()))
        except BaseException:
            os.close(fd)
            raise
        if _names(path, fd):
            break
        os.close(fd)  # the holder removed it meanwhile: lock the file at the path now
    try:
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)  # unlocks


def _try_flock(fd):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _names(path, fd):
    """True when ``path`` is the file open as ``fd``."""
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)


# ---- Galera: a lease row the cluster replicates (docs/galera.md, "The migration lock")
LEASE_POLL_SECONDS = 0.5
# Marks the holding run's statements, so a run about to take an expired lease
# over sees, on its own node, a statement the holder still runs: Galera runs DDL
# on every node at once (Total Order Isolation), and an applier shows the text
# of the statement whose rows it applies.
STATEMENT_TAG = "/* glance_db_lease:%s */ "
_RACE_LOST = (DEADLOCK, DUPLICATE_KEY, LOCK_WAIT_TIMEOUT)  # certification conflict, duplicate key, lock wait
_NO_RIGHTS = (DB_ACCESS_DENIED, TABLE_ACCESS_DENIED, SPECIFIC_ACCESS_DENIED)


class GaleraLease(object):
    """The cluster-wide migration lock: one row per Glance database in
    ``<lock_database>.leases``, written through any node.

    Taken with a transaction Galera certifies cluster-wide (two nodes cannot
    both commit it); kept alive by a heartbeat thread on a connection of its
    own; a run whose lease could not be renewed stops before its next statement
    (fencing); an expired lease is taken over only when no DDL statement of its
    holder is still running.
    """

    def __init__(self, engine, seconds, database):
        self.engine = engine
        self.seconds = max(int(seconds), 4)
        self.database = database
        self.name = engine.url.database
        self.token = uuid.uuid4().hex
        self.tag = STATEMENT_TAG % self.token
        self.table = "`%s`.`leases`" % database.replace("`", "``")
        # read_timeout: a renewal stuck longer than the lease is lost anyway.
        self.lock_engine = db_connection.create_engine(engine.url, read_timeout=self.seconds)
        self.renewed = None  # monotonic time at which the last successful renewal started
        self.lost = None  # why this run no longer holds the lease
        self.stop = threading.Event()
        self.thread = None
        self.node = None

    # ---- taking and giving back
    def acquire(self, timeout):
        deadline = time.monotonic() + timeout
        holder = None
        with self.lock_engine.connect() as conn:
            self._ensure_table(conn)
            while True:
                got, holder = self._try(conn)
                if got:
                    break
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        "Another run (on Galera node %s) has held the Glance migration lock for more "
                        "than %s seconds (lease in %s). Wait for it to finish (or raise lock_timeout), "
                        "then run again." % (holder or "unknown", timeout, self.table.replace("`", "")))
                time.sleep(LEASE_POLL_SECONDS)
        sa.event.listen(self.engine, "before_cursor_execute", self._fence_statement, retval=True)
        sa.event.listen(self.engine, "commit", self._fence_commit)
        self.thread = threading.Thread(target=self._heartbeat, name="glance-db-lease", daemon=True)
        self.thread.start()

    def release(self):
        self.stop.set()
        if self.thread is not None:
            self.thread.join(self.seconds)
        for event, fn in (("before_cursor_execute", self._fence_statement),
                          ("commit", self._fence_commit)):
            if sa.event.contains(self.engine, event, fn):
                sa.event.remove(self.engine, event, fn)
        try:
            with self.lock_engine.connect() as conn:
                conn.execute(sa.text("DELETE FROM %s WHERE name = :n AND holder = :t" % self.table),
                             {"n": self.name, "t": self.token})
                conn.commit()
        except sa.exc.DBAPIError:
            pass  # the node is gone: the lease expires by itself
        finally:
            self.lock_engine.dispose()

    def _ensure_table(self, conn):
        try:
            conn.execute(sa.text("SELECT 1 FROM %s LIMIT 0" % self.table))
            conn.rollback()
            return
        except sa.exc.DBAPIError as exc:
            conn.rollback()
            if code_of(exc) in _NO_RIGHTS:
                raise self._no_rights(exc)
            if code_of(exc) not in (NO_SUCH_TABLE, NO_SUCH_DATABASE):  # made below
                raise
        try:
            conn.execute(sa.text("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4"
                                 % self.database.replace("`", "``")))
            conn.execute(sa.text(
                "CREATE TABLE IF NOT EXISTS %s ("
                " name VARCHAR(64) NOT NULL PRIMARY KEY,"
                " holder CHAR(32) NOT NULL,"
                " node VARCHAR(255) NOT NULL,"
                " connection_id BIGINT NOT NULL,"
                " acquired_at DATETIME(6) NOT NULL,"
                " expires_at DATETIME(6) NOT NULL"
                ") ENGINE=InnoDB" % self.table))
            conn.commit()
        except sa.exc.DBAPIError as exc:
            conn.rollback()
            if code_of(exc) in _NO_RIGHTS:
                raise self._no_rights(exc)
            raise

    def _no_rights(self, exc):
        user = self.engine.url.username or "the Glance database user"
        return MissingPrivilege(
            "On Galera the migration lock is a lease row in database %s (GET_LOCK holds on one node "
            "only), which %s may not create or write. Fix: CREATE DATABASE %s; GRANT SELECT, INSERT, "
            "UPDATE, DELETE, CREATE ON %s.* TO %s; or set galera_lock_database to a database it may "
            "write (not the Glance database)." % (self.database, user, self.database, self.database,
                                                  user))

    def _try(self, conn):
        """One attempt: (True, None) when taken, else (False, the holder's node)."""
        start = time.monotonic()
        try:
            row = conn.execute(sa.text(
                "SELECT holder, node, expires_at <= UTC_TIMESTAMP(6) FROM %s WHERE name = :n FOR UPDATE"
                % self.table), {"n": self.name}).first()
            values = {"n": self.name, "t": self.token, "s": self.seconds}
            if row is None:
                conn.execute(sa.text(
                    "INSERT INTO %s (name, holder, node, connection_id, acquired_at, expires_at) "
                    "VALUES (:n, :t, @@wsrep_node_name, CONNECTION_ID(), UTC_TIMESTAMP(6), "
                    "UTC_TIMESTAMP(6) + INTERVAL :s SECOND)" % self.table), values)
            elif row[2] and not self._still_running(conn, row[0]):
                values["old"] = row[0]
                conn.execute(sa.text(
                    "UPDATE %s SET holder = :t, node = @@wsrep_node_name, connection_id = CONNECTION_ID(), "
                    "acquired_at = UTC_TIMESTAMP(6), expires_at = UTC_TIMESTAMP(6) + INTERVAL :s SECOND "
                    "WHERE name = :n AND holder = :old" % self.table), values)
            else:
                conn.rollback()
                return False, row[1]
            self.node = conn.execute(sa.text("SELECT @@wsrep_node_name")).scalar()
            conn.commit()  # Galera certifies it: of two nodes' takers, one commits
        except sa.exc.DBAPIError as exc:
            try:
                conn.rollback()
            except sa.exc.DBAPIError:
                pass
            if code_of(exc) in _RACE_LOST:
                return False, None
            if code_of(exc) in _NO_RIGHTS:
                raise self._no_rights(exc)
            raise
        self.renewed = start
        return True, None

    def _still_running(self, conn, holder):
        """Whether a statement tagged by ``holder`` runs or is applied on this node."""
        return conn.execute(sa.text(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            "AND INFO LIKE :p"), {"p": "%" + (STATEMENT_TAG % holder).strip() + "%"}).scalar() > 0

    # ---- keeping it
    def _heartbeat(self):
        conn = None
        interval = self.seconds / 5.0
        while not self.stop.wait(interval):
            while not self.stop.is_set():
                start = time.monotonic()
                try:
                    if conn is None:
                        conn = self.lock_engine.connect()
                    result = conn.execute(sa.text(
                        "UPDATE %s SET expires_at = UTC_TIMESTAMP(6) + INTERVAL :s SECOND "
                        "WHERE name = :n AND holder = :t" % self.table),
                        {"n": self.name, "t": self.token, "s": self.seconds})
                    conn.commit()
                    if result.rowcount != 1:
                        self.lost = "another run took the lease over"
                        return
                    self.renewed = max(self.renewed, start)
                except Exception:  # the node or network: try again; fencing decides
                    if conn is not None:
                        conn.invalidate()
                        conn.close()
                    conn = None
                # A renewal held up (by a DDL statement in isolation) is redone at once,
                # so the lease this run counts on starts now.
                if time.monotonic() - start < interval:
                    break
        if conn is not None:
            conn.close()

    def check(self):
        """Fencing: return only while this run holds the lease; else raise LockLost."""
        margin = 1.0
        waited_since = None
        while True:
            if self.lost:
                raise self._lost_error(self.lost)
            if time.monotonic() - self.renewed < self.seconds - margin:
                return
            # Not renewed for almost a lease: wait for the heartbeat (a long DDL
            # statement in isolation holds its renewal), at most one more lease.
            waited_since = waited_since or time.monotonic()
            if time.monotonic() - waited_since > self.seconds:
                raise self._lost_error("it could not be renewed for %d seconds" % (
                    time.monotonic() - self.renewed))
            time.sleep(0.1)

    def _lost_error(self, why):
        return LockLost(
            "This run lost the Galera migration lock (lease through node %s: %s) and stopped before "
            "its next statement; another run may be migrating. Check the cluster (glance_db_facts "
            "through each node), then run again." % (self.node or "unknown", why))

    def _fence_statement(self, conn, cursor, statement, parameters, context, executemany):
        self.check()
        if not executemany:  # PyMySQL batches executemany only when the text is bare
            statement = self.tag + statement
        return statement, parameters

    def _fence_commit(self, conn):
        self.check()
