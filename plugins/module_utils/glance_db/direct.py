# -*- coding: utf-8 -*-
"""Reads with the database driver alone, without SQLAlchemy.

SQLAlchemy's import is most of a short run's time, and a database with nothing
to do needs only a few plain queries: glance_db_facts' read (state.read_direct),
a phase with nothing to do, and the every-deploy metadefs load that finds
everything in place. A URL whose options only SQLAlchemy's dialect knows is
left to it (parse_plain_url gives None), and so is any read that fails.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .connection import CONNECT_TIMEOUT, galera_reads_wait, mysql_password, split_url
from .deps import driver
from .drivers import DRIVER_MODULES, choose_driver

# Seconds a driver-only read may go unanswered (the writing modules' read_timeout is longer).
DIRECT_READ_TIMEOUT = 60
_SCHEME = re.compile(r"(?:mysql|mariadb|postgresql|postgres|sqlite)(?:\+\w+)?")
_USER = re.compile(r"[^:/@]*")
_HOST = re.compile(r"[^/:?@]*")
_PORT = re.compile(r"\d+")


def _as_bool(text):
    """A query value read as SQLAlchemy's dialect reads a bool (sqlalchemy.util.asbool)."""
    word = text.strip().lower()
    if word in ("true", "yes", "on", "y", "t", "1"):
        return True
    if word in ("false", "no", "off", "n", "f", "0"):
        return False
    raise ValueError(text)


# The query options the deployment tools write into Glance's URL (kolla-ansible:
# ssl_ca; openstack-ansible: charset, ssl_verify_cert, ssl_ca) and their kin, each
# handed to the driver as SQLAlchemy's dialect hands it (mysqldb.py and psycopg's
# create_connect_args), so the driver alone connects exactly as the full path does.
# MySQL: these become PyMySQL's ``ssl`` dict, without the ``ssl_`` prefix.
_MYSQL_SSL_DICT = {"ssl_ca": str, "ssl_cert": str, "ssl_key": str, "ssl_capath": str,
                   "ssl_cipher": str, "ssl_check_hostname": _as_bool}
# Keyword arguments, as written. MySQL: PyMySQL reads ssl_verify_cert's text itself, and
# then builds its TLS settings from its own arguments alone (the ``ssl`` dict's CA is not
# used). PostgreSQL: libpq's keywords.
_AS_WRITTEN = {"mysql": ("charset", "ssl_verify_cert"),
               "postgresql": ("sslmode", "sslrootcert", "sslcert", "sslkey")}


def driver_options(backend, query):
    """The driver's keyword arguments for a URL's query options (a dict of strings),
    or None when one of them is not a deployment tool's (SQLAlchemy then opens it)."""
    if not query:
        return {}
    options, ssl = {}, {}
    for key, value in query.items():
        if backend == "mysql" and key in _MYSQL_SSL_DICT:
            try:
                ssl[key[len("ssl_"):]] = _MYSQL_SSL_DICT[key](value)
            except ValueError:  # SQLAlchemy's dialect names the bad value
                return None
        elif key in _AS_WRITTEN.get(backend, ()):
            options[key] = value
        else:
            return None
    if ssl:
        options["ssl"] = ssl
    return options


def _query(text):
    """A URL's query as SQLAlchemy's make_url parses it (blank values dropped), or None
    when a key repeats (SQLAlchemy would hand the driver a list)."""
    pairs = parse_qsl(text or "")
    query = dict(pairs)
    return query if len(query) == len(pairs) else None


class PlainUrl(object):
    """A database URL whose query options, if any, the driver alone can take; parsed
    without SQLAlchemy."""

    def __init__(self, drivername, username, password, host, port, database, query):
        self.backend, self.driver, _warning = choose_driver(drivername)
        self.username = unquote(username) if username else None
        self.password = unquote(password) if password else None
        self.host = host or None
        self.port = int(port) if port else None
        self.database = database
        self.query = query
        self.driver_options = driver_options(self.backend, query)

    def render_as_string(self, hide_password=True):
        """Like SQLAlchemy's URL: the password masked."""
        user = ""
        if self.username is not None:
            user = quote(self.username, safe="")
            if self.password is not None:
                user += ":" + ("***" if hide_password else quote(self.password, safe=""))
            user += "@"
        port = ":%d" % self.port if self.port else ""
        query = "?" + urlencode(sorted(self.query.items())) if self.query else ""
        return "%s://%s%s%s/%s%s" % (self.backend, user, self.host or "", port, self.database, query)


def _plain_parts(raw):
    """(drivername, username, password, host, port, database, query text) of ``raw``,
    split as connection.split_url splits every URL, or None when a part is not plain."""
    scheme, info, rest = split_url(raw)
    if scheme is None or not _SCHEME.fullmatch(scheme):
        return None
    username = password = None
    if info is not None:
        username, colon, password = info.partition(":")
        if not _USER.fullmatch(username) or "@" in password:
            return None
        password = password if colon else None
    path, question, query = rest.partition("?")
    host_port, slash, database = path.partition("/")
    host, colon, port = host_port.partition(":")
    if not slash or not _HOST.fullmatch(host) or (colon and not _PORT.fullmatch(port)):
        return None
    return scheme, username, password, host, port, database, query if question else None


def parse_plain_url(raw):
    """A PlainUrl when the driver alone can open ``raw``, else None (SQLAlchemy opens it)."""
    parts = _plain_parts(raw)
    if parts is None or not parts[5] or "%" in parts[5]:
        return None
    query = _query(parts[6])
    if query is None:
        return None
    url = PlainUrl(*(parts[:6] + (query,)))
    if url.driver not in ("pymysql", "psycopg", "psycopg2", "pysqlite") or url.driver_options is None:
        return None  # a driver, or a query option, connect_direct does not open
    if url.backend == "sqlite":
        if url.host or url.username or url.port or url.database.startswith("file:") \
                or url.database == ":memory:":
            return None
    elif not url.host:
        return None  # a local socket: SQLAlchemy's dialect knows where
    return url


def connect_direct(url):
    """A DB-API connection to ``url`` for reading, or None when the driver is missing.

    SQLite is opened read-only. Driver errors propagate.
    """
    if url.backend == "sqlite":
        sqlite3 = driver("sqlite3")
        uri = "file:%s?mode=ro" % quote(os.path.abspath(url.database))
        return sqlite3.connect(uri, uri=True)
    if url.backend == "mysql":
        pymysql = driver("pymysql")
        if not pymysql:
            return None
        conn = _preferred_tls_connection(pymysql)(**direct_connect_args(url))
        try:
            galera_reads_wait(conn)
        except Exception:
            conn.close()
            raise
        return conn
    # psycopg2 when the URL names it (Glance's own driver): it imports in a fraction of psycopg's time.
    postgres = driver(DRIVER_MODULES[url.driver])
    return postgres.connect(**direct_connect_args(url)) if postgres else None


def direct_connect_args(url):
    """The MySQL or PostgreSQL driver's keyword arguments for the PlainUrl ``url``: what
    SQLAlchemy's dialect gives it, plus the timeouts and charset create_engine adds."""
    args = dict((key, value) for key, value in (
        ("host", url.host), ("port", url.port), ("user", url.username),
        ("password", url.password)) if value is not None)
    args["connect_timeout"] = CONNECT_TIMEOUT
    if url.backend == "mysql":
        if url.password is not None:
            args["password"] = mysql_password(url.password)
        args.update(database=url.database, read_timeout=DIRECT_READ_TIMEOUT,
                    write_timeout=DIRECT_READ_TIMEOUT,
                    charset="utf8")  # Glance's tables are utf8 (utf8mb3), unless the URL says
    else:
        args["dbname"] = url.database
    args.update(url.driver_options)
    return args


def _preferred_tls_connection(pymysql):
    """PyMySQL's Connection, with its default TLS (PREFERRED: TLS whenever the server
    offers it, the certificate not verified) set up without loading the system's CA
    store: a context that verifies nothing never reads it, and loading it is most of
    a connect's time. The settings are PyMySQL's own (tests/unit/plugins/module_utils/glance_db/test_direct_tls.py
    compares them)."""
    class Connection(pymysql.connections.Connection):
        def _create_ssl_ctx(self, sslp):
            if sslp != {}:  # TLS options given: PyMySQL's context, which verifies
                return super(Connection, self)._create_ssl_ctx(sslp)
            return unverified_tls_context()
    return Connection


def unverified_tls_context():
    """The TLS context of PyMySQL's PREFERRED mode, minus the CA store it never uses."""
    import ssl  # here: only a MySQL read needs it (PyMySQL imports it anyway)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.options |= ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3
    return ctx


class NeedsSqlAlchemy(Exception):
    """Data migrations' rows are counted through SQLAlchemy (bound parameters)."""


class DriverQueries(object):
    """The queries a state read makes (state.on_connection's), on a DB-API connection."""

    TABLES = {
        "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' "
                  "AND name NOT LIKE 'sqlite~_%' ESCAPE '~' ORDER BY name",
        "mysql": "SELECT TABLE_NAME FROM information_schema.TABLES "
                 "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
        "postgresql": "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                      "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                      "AND c.relkind IN ('r', 'p')",
    }

    def __init__(self, conn, url):
        self.conn = conn
        self.dialect = url.backend
        self.database = url.database

    def table_names(self):
        return [row[0] for row in self.rows(self.TABLES[self.dialect])]

    def rows(self, sql):
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def count_rows(self, migration):
        raise NeedsSqlAlchemy(migration.name)

    def rows_before_open(self, migration):
        raise NeedsSqlAlchemy(migration.name)


def read_with(conn, url, read):
    """``read(DriverQueries)`` on ``conn`` (connect_direct's), which is then rolled back
    and closed; None when ``conn`` is None or anything fails: the SQLAlchemy path
    meets it again and reports it."""
    if conn is None:
        return None
    try:
        try:
            return read(DriverQueries(conn, url))
        finally:
            conn.rollback()
            conn.close()
    except Exception:  # whatever it is, the SQLAlchemy path meets it again and reports it
        return None
