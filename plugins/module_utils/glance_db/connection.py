# -*- coding: utf-8 -*-
"""From the module's options to a SQLAlchemy engine, and passwords out of every message.

The URL comes from ``connection`` or from ``[database] connection`` of the Glance
config files, read the way oslo.config reads them: ``config_file`` in order, then
the ``*.conf`` files of ``config_dir`` in name order, a later value winning.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, quote_plus, unquote

from . import glance_conf
from .deps import DRIVERS, driver, driver_available, sa
from .errors import ConfigurationError, ConnectionFailed, GlanceDbError

# Drivers we can run, tried in order, for each URL scheme an operator may write.
_DRIVER_CHOICES = {
    "mysql": ("pymysql",),
    "mariadb": ("pymysql",),
    "postgresql": ("psycopg", "psycopg2"),
    "postgres": ("psycopg", "psycopg2"),
    "sqlite": ("pysqlite",),
}
_DRIVER_MODULES = {"pymysql": "pymysql", "psycopg": "psycopg", "psycopg2": "psycopg2",
                   "pysqlite": "sqlite3"}


class Redactor(object):
    """Removes a password, raw and URL-encoded, from any text."""

    MASK = "********"

    def __init__(self):
        self.secrets = set()

    def add(self, secret):
        if secret:
            for form in (secret, quote(secret, safe=""), quote_plus(secret), quote(secret)):
                self.secrets.add(form)

    def __call__(self, text):
        text = str(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, self.MASK)
        # Any password still written inside a URL (user:password@host) goes too.
        return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1%s@" % self.MASK, text)


def read_config_files(config_file=None, config_dir=None):
    """The ``[database] connection`` value of Glance's config files, or an error."""
    return glance_conf.read(config_file, config_dir).connection


def raw_url(connection=None, config_file=None, config_dir=None):
    """The database URL as written, from the option or the config files."""
    return url_and_source(connection, config_file, config_dir)[0]


def url_and_source(connection=None, config_file=None, config_dir=None):
    """raw_url(), and where it came from: "connection", or the config file that set it."""
    if connection:
        return connection, "connection"
    conf = glance_conf.read(config_file, config_dir)
    return conf.connection, conf.source


def resolve_url(connection=None, config_file=None, config_dir=None, redactor=None):
    """Parse the database URL (from the option or the config files) into a sa URL."""
    raw = raw_url(connection, config_file, config_dir)
    try:
        url = sa.engine.make_url(raw)
    except Exception:
        raise ConfigurationError(
            "The database URL is malformed; expected e.g. "
            "mysql+pymysql://glance:PASSWORD@dbhost/glance, "
            "postgresql+psycopg://glance:PASSWORD@dbhost/glance or "
            "sqlite:////var/lib/glance/glance.sqlite.")
    if redactor is not None:
        redactor.add(url.password)
    return _with_available_driver(url)


def _with_available_driver(url):
    backend, driver = (url.drivername.split("+", 1) + [""])[:2]
    choices = _DRIVER_CHOICES.get(backend)
    if choices is None:
        raise ConfigurationError(
            "Unsupported database '%s'. Glance runs on mysql (MariaDB), postgresql "
            "and sqlite." % url.drivername)
    # Glance configs often name a driver that is not installed here (MySQLdb,
    # psycopg2): fall back to one we can run.
    for candidate in ((driver,) if driver in choices else ()) + choices:
        if driver_available(_DRIVER_MODULES[candidate]):
            backend = "mysql" if backend == "mariadb" else backend
            backend = "postgresql" if backend == "postgres" else backend
            return url.set(drivername="%s+%s" % (backend, candidate))
    raise MissingDriver(DRIVERS["postgresql" if backend.startswith("postgres") else "mysql"][1])


class MissingDriver(GlanceDbError):
    """The Python driver for the database is not installed on the managed host."""

    def __init__(self, library):
        self.library = library
        super(MissingDriver, self).__init__(library)


def display_url(url):
    """The URL with its password masked, for messages and results."""
    return url.render_as_string(hide_password=True)


def create_engine(url, redactor):
    """An engine that fails fast and whose errors carry no password."""
    args = {}
    if url.get_backend_name() == "mysql":
        args["connect_timeout"] = 10
        if "charset" not in url.query:
            args["charset"] = "utf8"  # Glance's tables are utf8 (utf8mb3)
    elif url.get_backend_name() == "postgresql":
        args["connect_timeout"] = 10
    engine = sa.create_engine(url, connect_args=args, pool_pre_ping=False)
    if url.get_backend_name() == "sqlite":
        _sqlite_transactional_ddl(engine)
    elif url.get_backend_name() == "mysql":
        _mysql_session_like_glance(engine)
    return engine


def _mysql_session_like_glance(engine):
    """oslo.db runs Glance's MySQL sessions in TRADITIONAL (strict) mode; triggers
    record the mode they were created in, so ours match Glance's."""
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, connection_record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = 'TRADITIONAL'")


def _sqlite_transactional_ddl(engine):
    """Let SQLite wrap DDL in our transactions (pysqlite would commit it at once),
    so a revision and its alembic_version row commit together."""
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN")


def check_connection(engine, redactor):
    """Connect once, turning driver errors into one readable sentence."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        raise ConnectionFailed(redactor(describe_db_error(exc, engine.url)))


def describe_db_error(exc, url):
    """One line for a driver error, naming what to check."""
    original = getattr(exc, "orig", exc)
    text = str(original).strip().splitlines()[0] if str(original).strip() else repr(original)
    where = display_url(url)
    code = original.args[0] if getattr(original, "args", None) else None
    if code == 1045 or "password authentication failed" in text or "Access denied" in text:
        hint = "check the user name and password"
    elif code == 1049 or ("database" in text and "does not exist" in text):
        hint = "create the database first (CREATE DATABASE glance) or fix its name"
    elif code in (2003, 2005) or "could not connect" in text.lower() or "connection refused" in text.lower() \
            or "failed to resolve" in text.lower() or "name or service not known" in text.lower():
        hint = "check that the server is running and reachable from this host"
    elif code in (1142, 1044) or "permission denied" in text.lower() or "readonly database" in text.lower() \
            or "read-only" in text.lower():
        hint = ("this database user may read but not change the schema: grant it all privileges "
                "on the Glance database, or use the user glance-manage uses")
    elif "unable to open database file" in text:
        hint = "check that the SQLite file's directory exists and is writable"
    else:
        hint = "see the database error above"
    return "Cannot use the database at %s: %s (%s)." % (where, text, hint)


# ---- plain URLs, opened with the driver alone (reads of glance_db_facts)
_PASSWORD = re.compile(r"^[\w+]+://[^:/@]*:([^@]*)@")
_PLAIN_URL = re.compile(
    r"^(?P<backend>mysql|mariadb|postgresql|postgres|sqlite)(?:\+\w+)?://"
    r"(?:(?P<username>[^:/@]*)(?::(?P<password>[^@]*))?@)?"
    r"(?P<host>[^/:?@]*)(?::(?P<port>\d+))?/(?P<database>[^?]*)$")
_BACKENDS = {"mariadb": "mysql", "postgres": "postgresql"}


def password_of(raw):
    """The password written in a database URL, decoded, or None."""
    match = _PASSWORD.match((raw or "").strip())
    return unquote(match.group(1)) if match else None


class PlainUrl(object):
    """A database URL without query options, parsed without SQLAlchemy."""

    def __init__(self, match):
        self.backend = _BACKENDS.get(match.group("backend"), match.group("backend"))
        self.username = unquote(match.group("username")) if match.group("username") else None
        self.password = unquote(match.group("password")) if match.group("password") else None
        self.host = match.group("host") or None
        self.port = int(match.group("port")) if match.group("port") else None
        self.database = match.group("database")

    def render_as_string(self, hide_password=True):
        """Like SQLAlchemy's URL: the password masked."""
        user = ""
        if self.username is not None:
            user = quote(self.username, safe="")
            if self.password is not None:
                user += ":" + ("***" if hide_password else quote(self.password, safe=""))
            user += "@"
        port = ":%d" % self.port if self.port else ""
        return "%s://%s%s%s/%s" % (self.backend, user, self.host or "", port, self.database)


def parse_plain_url(raw):
    """A PlainUrl when the driver alone can open ``raw``, else None (SQLAlchemy opens it)."""
    match = _PLAIN_URL.match((raw or "").strip())
    if not match or not match.group("database") or "%" in match.group("database"):
        return None
    url = PlainUrl(match)
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
    args = dict((key, value) for key, value in (
        ("host", url.host), ("port", url.port), ("user", url.username),
        ("password", url.password)) if value is not None)
    if url.backend == "mysql":
        pymysql = driver("pymysql")
        return pymysql.connect(database=url.database, charset="utf8", connect_timeout=10,
                               **args) if pymysql else None
    psycopg = driver("psycopg")
    return psycopg.connect(dbname=url.database, connect_timeout=10, **args) if psycopg else None
