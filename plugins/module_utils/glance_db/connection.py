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

from .deps import sa
from .drivers import BACKENDS, choose_driver
from .errors import ConfigurationError
from .options import default

# Seconds a server may take to accept a connection.
CONNECT_TIMEOUT = 10
_SCHEME = re.compile(r"[\w+]+")


def split_url(raw):
    """(scheme, user info, the rest) of a database URL as written: the scheme before
    ``://`` (None when that is missing), the user info from there (or the start) to the
    last ``@`` (None without one), and what follows it. Every raw URL is split here:
    a password with an unencoded ``@`` would mislead any URL parser."""
    text = (raw or "").strip()
    found = text.find("://")
    start = found + 3 if found >= 0 else 0
    scheme = text[:found] if found >= 0 else None
    end = text.rfind("@")
    if end >= start:
        return scheme, text[start:end], text[end + 1:]
    return scheme, None, text[start:]


def user_info(raw):
    """The user-info part of a database URL as written, or None (split_url)."""
    return split_url(raw)[1]


def _masked(raw):
    """``raw`` with its whole user-info part masked."""
    text = (raw or "").strip()
    scheme, info, rest = split_url(text)
    if info is None:
        return text
    return ("" if scheme is None else scheme + "://") + Redactor.MASK + "@" + rest


class Redactor(object):
    """Removes a password, as written and URL-encoded, from any text.

    Secrets of three characters or more are masked wherever they occur; in any
    URL left in the text, everything between the user name and the host goes too.
    """

    MASK = "********"
    _URL_PASSWORD = re.compile(r"(://[^\s:/@]*:)\S*@")

    def __init__(self):
        self.secrets = set()

    def add(self, secret):
        """Mask ``secret`` (a password, decoded or as written) from now on."""
        if not secret:
            return
        for text in (secret, unquote(secret)):
            for form in (text, quote(text, safe=""), quote_plus(text), quote(text), quote_plus(text, safe="")):
                if len(form) >= 3:
                    self.secrets.add(form)

    def add_url(self, raw):
        """Mask the password of the database URL ``raw``, found in the raw string."""
        info = user_info(raw)
        if info:
            self.add(info.split(":", 1)[1] if ":" in info else None)
            if "@" in info:  # an ambiguous URL: none of it before the host is shown
                self.add(info)

    def __call__(self, text):
        text = str(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, self.MASK)
        return self._URL_PASSWORD.sub(r"\1%s@" % self.MASK, text)


def refuse_ambiguous(raw):
    """Refuse a URL whose user name or password holds an unencoded ``@``."""
    info = user_info(raw)
    if info and "@" in info:
        raise ConfigurationError(
            "The database URL %s has more than one '@' before its host: its password (or user name) "
            "holds an '@' that is not URL-encoded, so no part of it can be trusted. URL-encode the "
            "password, as oslo.db needs too ('@' is %%40, ':' %%3A, '/' %%2F, '%%' %%25), e.g. with "
            "python3 -c 'import getpass, urllib.parse; print(urllib.parse.quote(getpass.getpass(), "
            "safe=\"\"))'." % _masked(raw))


def refuse_no_database(raw):
    """Refuse a MySQL or PostgreSQL URL that names no database (``.../`` or nothing after
    the host): Glance's tables live in one. Read from the raw string, so that the
    driver-only reads refuse it as SQLAlchemy's path does. SQLite URLs are left alone."""
    scheme, _info, after_host = split_url(raw)
    if scheme is None or BACKENDS.get(scheme.split("+", 1)[0]) in (None, "sqlite"):
        return
    if not after_host.partition("?")[0].partition("/")[2]:
        raise ConfigurationError(
            "The database URL %s names no database: add the Glance database's name after the host "
            "(...@dbhost:port/glance), as [database] connection in glance-api.conf has it." % _masked(raw))


def driver_warning(raw):
    """The warning choose_driver gives for the URL ``raw``, or None (refusals raise)."""
    scheme = split_url(raw)[0]
    return choose_driver(scheme)[2] if scheme and _SCHEME.fullmatch(scheme) else None


def url_and_source(connection=None, config_file=None, config_dir=None, redactor=None):
    """The database URL as written, from the option or the config files, and where it
    came from: "connection", or the config file that set it.

    Its password joins ``redactor`` before anything parses it, and an ambiguous
    URL (an unencoded '@' in its password) is refused here, whichever source gave it.
    """
    if connection:
        raw, source = connection, "connection"
    else:
        from . import glance_conf  # here: a run given ``connection`` never pays for the reader
        conf = glance_conf.read(config_file, config_dir)
        raw, source = conf.connection, conf.source
    if redactor is not None:
        redactor.add_url(raw)
    refuse_ambiguous(raw)
    refuse_no_database(raw)
    return raw, source


def resolve_url(raw, redactor=None):
    """Parse a database URL (url_and_source's) into a sa URL with the driver this host has."""
    if redactor is not None:
        redactor.add_url(raw)
    refuse_ambiguous(raw)
    refuse_no_database(raw)
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
    backend, name, _warning = choose_driver(url.drivername)
    return url.set(drivername="%s+%s" % (backend, name))


def display_url(url):
    """The URL with its password masked, for messages and results."""
    return url.render_as_string(hide_password=True)


def create_engine(url, read_timeout=None):
    """An engine that fails fast and whose errors carry no password."""
    args = {}
    if url.get_backend_name() == "mysql":
        args["connect_timeout"] = CONNECT_TIMEOUT
        # How long a statement may go unanswered (PyMySQL waits for ever otherwise, e.g. on a
        # frozen Galera node): above the longest statement, a table rebuild (read_timeout).
        args["read_timeout"] = args["write_timeout"] = read_timeout or default("read_timeout")
        if "charset" not in url.query:
            args["charset"] = "utf8"  # Glance's tables are utf8 (utf8mb3)
    elif url.get_backend_name() == "postgresql":
        args["connect_timeout"] = CONNECT_TIMEOUT
    engine = sa.create_engine(url, connect_args=args, pool_pre_ping=False)
    if url.get_backend_name() == "sqlite":
        _sqlite_transactional_ddl(engine)
    elif url.get_backend_name() == "mysql":
        _mysql_session_like_glance(engine)
        _mysql_utf8_password(engine)
    return engine


def _mysql_utf8_password(engine):
    @sa.event.listens_for(engine, "do_connect")
    def _do_connect(dialect, connection_record, cargs, cparams):
        if cparams.get("password") is not None:
            cparams["password"] = mysql_password(cparams["password"])


def _mysql_session_like_glance(engine):
    """oslo.db runs Glance's MySQL sessions in TRADITIONAL (strict) mode; triggers
    record the mode they were created in, so ours match Glance's."""
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, connection_record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = 'TRADITIONAL'")
        galera_reads_wait(dbapi_connection)


def galera_reads_wait(dbapi_connection):
    """On a Galera node, make reads wait until this node has applied every write
    the cluster committed before them (wsrep_sync_wait bit 1), so a state read
    through one node right after a phase ran through another sees it."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
        row = cursor.fetchone()
        if row and str(row[1]).upper() == "ON":
            cursor.execute("SET SESSION wsrep_sync_wait = @@SESSION.wsrep_sync_wait | 1")
    finally:
        cursor.close()


def _sqlite_transactional_ddl(engine):
    """Let SQLite wrap DDL in our transactions (pysqlite would commit it at once),
    so a revision and its alembic_version row commit together."""
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN")


def sqlite_file_missing(path):
    """True when the SQLite file ``path`` does not exist (an empty database to read).

    Its directory must exist: glance-manage fails there (unable to open database
    file), and reading never creates it.
    """
    if os.path.exists(path):
        return False
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigurationError(
            "Cannot use the database at sqlite:///%s: the directory %s does not exist "
            "(glance-manage fails there too: unable to open database file). Fix the path in "
            "the connection, or create the directory." % (path, directory))
    return True


def mysql_password(password):
    """PyMySQL sends a str password as Latin-1 (and fails beyond it); the server
    hashed the UTF-8 bytes a UTF-8 client sent when the account was made."""
    return password.encode("utf-8") if isinstance(password, str) else password
