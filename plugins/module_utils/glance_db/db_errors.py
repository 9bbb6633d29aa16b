# -*- coding: utf-8 -*-
"""Database errors, decided once: the code behind an exception, the codes we act on,
how a statement is tried again, and the sentence an operator reads.

Every retry loop runs through with_backoff() with one of the policies below; on
Galera a deadlock (1213) is also a transaction that lost certification to a write
through another node.
"""

from __future__ import annotations

from .connection import CONNECT_TIMEOUT, display_url
from .deps import sa
from .errors import ConnectionFailed

# MySQL / MariaDB server errors (the server's ER_ names in the comments).
DB_ACCESS_DENIED = 1044  # ER_DBACCESS_DENIED_ERROR: may not use that database (often: it does not exist)
ACCESS_DENIED = 1045  # ER_ACCESS_DENIED_ERROR: a wrong password, or an account that requires TLS
NOT_PRIMARY = 1047  # ER_UNKNOWN_COM_ERROR: a Galera node outside the Primary component
NO_SUCH_DATABASE = 1049  # ER_BAD_DB_ERROR
DUPLICATE_KEY = 1062  # ER_DUP_ENTRY
TABLE_ACCESS_DENIED = 1142  # ER_TABLEACCESS_DENIED_ERROR: a privilege missing on a table
NO_SUCH_TABLE = 1146  # ER_NO_SUCH_TABLE
LOCK_WAIT_TIMEOUT = 1205  # ER_LOCK_WAIT_TIMEOUT: gave up waiting for a row or metadata lock
DEADLOCK = 1213  # ER_LOCK_DEADLOCK; on Galera also a lost certification
SPECIFIC_ACCESS_DENIED = 1227  # ER_SPECIFIC_ACCESS_DENIED_ERROR: needs e.g. SUPER
NO_SUCH_TRIGGER = 1360  # ER_TRG_DOES_NOT_EXIST
ROUTINE_NEEDS_SUPER = 1419  # ER_BINLOG_CREATE_ROUTINE_NEED_SUPER: binary logging, no SUPER
# MySQL / MariaDB client errors.
CANNOT_CONNECT = 2003  # CR_CONN_HOST_ERROR
UNKNOWN_HOST = 2005  # CR_UNKNOWN_HOST
SERVER_GONE = 2006  # CR_SERVER_GONE_ERROR
SERVER_LOST = 2013  # CR_SERVER_LOST: stopped answering mid-query
# PostgreSQL SQLSTATEs, and SQLite's message for a database another connection writes.
PG_LOCK_NOT_AVAILABLE = "55P03"
PG_DEADLOCK = "40P01"
SQLITE_LOCKED = "database is locked"


def code_of(exc):
    """The MySQL error number behind ``exc`` (a SQLAlchemy DBAPIError or the driver's own
    exception), or None: other drivers' errors carry no number."""
    args = getattr(getattr(exc, "orig", exc), "args", None)
    return args[0] if args and isinstance(args[0], int) else None


class Backoff(object):
    """How a statement is tried again: on which errors, how often, after which pause."""

    def __init__(self, retries, pause, mysql=(), postgresql=(), sqlite=()):
        self.retries = retries  # times tried again at most, after the first
        self.pause = pause  # seconds to wait before the n-th try again (n from 1)
        self.mysql = mysql
        self.postgresql = postgresql
        self.sqlite = sqlite

    @property
    def tries(self):
        """Times a statement runs at most."""
        return self.retries + 1

    def retries_on(self, exc):
        """Whether ``exc`` is an error this policy tries again."""
        if code_of(exc) in self.mysql:
            return True
        original = getattr(exc, "orig", None)
        if getattr(original, "sqlstate", None) in self.postgresql:
            return True
        return any(text in str(original) for text in self.sqlite)


def _doubling(first, most=None):
    return lambda n: first * 2 ** (n - 1) if most is None else min(first * 2 ** (n - 1), most)


RETRIES = 6
FIRST_BACKOFF_SECONDS = 0.5
# A data migration's or a table copy's batch: one that waited for a row lock BATCH_ROW_LOCK_WAIT_SECONDS,
# or the deadlock's victim, runs again.
BATCH = Backoff(RETRIES, _doubling(FIRST_BACKOFF_SECONDS), mysql=(LOCK_WAIT_TIMEOUT, DEADLOCK))
# A batch waits this long for a row lock (the server's innodb_lock_wait_timeout if shorter), then is
# tried again: meanwhile it releases the rows it locked, and the run says it waits (progress.py).
# Seven tries outlast the server's default wait of 50 s.
BATCH_ROW_LOCK_WAIT_SECONDS = 5
BATCH_ROW_LOCK_WAIT = "LEAST(@@global.innodb_lock_wait_timeout, %d)" % BATCH_ROW_LOCK_WAIT_SECONDS
# Online DDL: it waits for metadata locks only lock_wait_timeout seconds, then again.
DDL = Backoff(RETRIES, _doubling(FIRST_BACKOFF_SECONDS), mysql=(LOCK_WAIT_TIMEOUT, DEADLOCK))
# A state read that another run's schema change aborted (Galera, in isolation on every node).
STATE_READ = Backoff(8, lambda n: 0.2 * n, mysql=(DEADLOCK,))
# A purge batch: row-lock waits and deadlocks on every engine; six tries in all.
PURGE_BATCH = Backoff(5, _doubling(0.1, most=2.0), mysql=(LOCK_WAIT_TIMEOUT, DEADLOCK),
                      postgresql=(PG_LOCK_NOT_AVAILABLE, PG_DEADLOCK), sqlite=(SQLITE_LOCKED,))


def with_backoff(statement, policy, sleep, on_retry=None):
    """Run ``statement()``; when it fails with an error ``policy`` tries again, wait
    (``sleep(policy.pause(n))``) and run it again, ``policy.retries`` times at most; the
    last error propagates. ``on_retry(exc, attempt, tries)``: called before each pause with the
    error, the number of the try to come and the tries at most (to count them, to say the run waits)."""
    for attempt in range(policy.tries):
        try:
            return statement()
        except sa.exc.OperationalError as exc:
            if not policy.retries_on(exc) or attempt == policy.retries:
                raise
            if on_retry is not None:
                on_retry(exc, attempt + 2, policy.tries)
            sleep(policy.pause(attempt + 1))
    raise AssertionError("unreachable")


# ---- the sentence an operator reads

def check_connection(engine, redactor):
    """Connect once, turning driver errors into one readable sentence."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        raise ConnectionFailed(redactor(describe_db_error(exc, engine.url)))


_DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}


def describe_db_error(exc, url):
    """One line for a driver error, naming what to check."""
    original = getattr(exc, "orig", exc)
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    lower = text.lower()
    where = display_url(url)
    server = "%s:%s" % (url.host, url.port or _DEFAULT_PORTS.get(_backend_of(url), ""))
    code = code_of(exc)
    if code in (DB_ACCESS_DENIED, NO_SUCH_DATABASE) or ("database" in lower and "does not exist" in lower):
        hint = ("check the database name '%s': create it (CREATE DATABASE %s) and grant the user "
                "all privileges on it (GRANT ALL PRIVILEGES ON %s.* TO ...)"
                % (url.database, url.database, url.database))
    elif code == ACCESS_DENIED and not (getattr(url, "query", None) or {}).get("ssl_cert"):
        # MariaDB refuses an account that requires TLS (REQUIRE SSL/X509) with the
        # same 1045 as a wrong password: name both.
        hint = ("the server refused this user: if its account requires TLS (REQUIRE SSL or X509), give "
                "the URL its client certificate, ?ssl_ca=CA.pem&ssl_cert=CERT.pem&ssl_key=KEY.pem; "
                "otherwise check the user name and password")
    elif code == ACCESS_DENIED or "password authentication failed" in lower or "access denied" in lower:
        hint = "check the user name and password"
    elif code in (SERVER_GONE, SERVER_LOST):
        hint = ("the server at %s stopped answering (killed, restarted or frozen; a query waits at "
                "most read_timeout seconds): check that node; on Galera, run again through another "
                "node, which completes the phase" % server)
    elif code == NOT_PRIMARY:
        hint = ("this Galera node (%s) is not part of the cluster's Primary component or not "
                "Synced: run through another node, or wait until it has rejoined" % server)
    elif "timed out" in lower or "timeout expired" in lower:
        hint = ("%s did not answer within %d seconds: check the host name and port, that the server "
                "is running, and that no firewall drops the connection" % (server, CONNECT_TIMEOUT))
    elif code in (CANNOT_CONNECT, UNKNOWN_HOST) or "could not connect" in lower \
            or "connection refused" in lower or "failed to resolve" in lower \
            or "name or service not known" in lower:
        hint = ("check that the server at %s is running and reachable from this host; on Galera, "
                "another node can run the phase" % server)
    elif code == TABLE_ACCESS_DENIED or "permission denied" in lower or "readonly database" in lower \
            or "read-only" in lower:
        hint = ("this database user may read but not change the schema: grant it all privileges "
                "on the Glance database, or use the user glance-manage uses")
    elif "unable to open database file" in lower:
        hint = "check that the SQLite file's directory exists and is writable"
    else:
        hint = "the database server's log may say more"
    return "Cannot use the database at %s: %s (%s)." % (where, text, hint)


def _backend_of(url):
    return url.get_backend_name() if hasattr(url, "get_backend_name") else url.backend
