# -*- coding: utf-8 -*-
"""One migrator at a time: a database-level lock held for a whole writing run.

MySQL/MariaDB: GET_LOCK on a connection kept open; PostgreSQL: a session
advisory lock; SQLite: flock on a file beside the database, there only while a
run holds the lock. Runs started
together serialize; the later ones then find nothing to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from .deps import sa
from .errors import LockTimeout

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
def migration_lock(engine, timeout):
    """Hold the migration lock for the duration of the block."""
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        with _file_lock(engine.url.database, timeout):
            yield
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
        conn.commit()
        try:
            yield
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
