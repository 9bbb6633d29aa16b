# -*- coding: utf-8 -*-
"""From the module's options to a SQLAlchemy engine, and passwords out of every message.

The URL comes from ``connection`` or from ``[database] connection`` of the Glance
config files, read the way oslo.config reads them: ``config_file`` in order, then
the ``*.conf`` files of ``config_dir`` in name order, a later value winning.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode

from .deps import DRIVERS, driver, driver_available, sa
from .errors import ConfigurationError, ConnectionFailed, GlanceDbError
from .options import default

# The drivers we run, for each URL scheme an operator may write, tried in order when
# the URL names none. Other names Glance configs commonly carry are replaced, with a
# warning, by the driver we run for them; any other driver name is refused.
_BACKENDS = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql",
             "postgres": "postgresql", "sqlite": "sqlite"}
_DRIVERS_RUN = {"mysql": ("pymysql",), "postgresql": ("psycopg", "psycopg2"), "sqlite": ("pysqlite",)}
_REPLACED = {("mysql", "mysqldb"): "MySQLdb, oslo.db's default", ("postgresql", "psycopg2"): "psycopg 2"}
_DRIVER_MODULES = {"pymysql": "pymysql", "psycopg": "psycopg", "psycopg2": "psycopg2",
                   "pysqlite": "sqlite3"}
# Seconds a server may take to accept a connection.
CONNECT_TIMEOUT = 10


def user_info(raw):
    """The user-info part of a database URL as written (from ``://``, or the start
    when that is missing, to the last ``@``), or None. Taken from the raw string:
    a password with an unencoded ``@`` would mislead any URL parser."""
    text = (raw or "").strip()
    start = text.find("://")
    start = start + 3 if start >= 0 else 0
    end = text.rfind("@")
    return text[start:end] if end >= start else None


def _masked(raw):
    """``raw`` with its whole user-info part masked."""
    text = (raw or "").strip()
    info = user_info(text)
    if info is None:
        return text
    start = text.find("://")
    start = start + 3 if start >= 0 else 0
    return text[:start] + Redactor.MASK + text[start + len(info):]


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
    text = (raw or "").strip()
    scheme, found, rest = text.partition("://")
    if not found or _BACKENDS.get(scheme.split("+", 1)[0]) in (None, "sqlite"):
        return
    info = user_info(text)
    after_host = rest[len(info) + 1:] if info is not None else rest
    if not after_host.partition("?")[0].partition("/")[2]:
        raise ConfigurationError(
            "The database URL %s names no database: add the Glance database's name after the host "
            "(...@dbhost:port/glance), as [database] connection in glance-api.conf has it." % _masked(text))


def choose_driver(drivername):
    """(backend, driver, warning): the driver we run for ``backend[+driver]``.

    No driver named: the first one installed. A name Glance configs commonly
    carry (MySQLdb, psycopg2) that is not installed: the one we run, with a
    warning. Any other name: refused, naming the drivers available here.
    """
    written_backend, written = (drivername.split("+", 1) + [""])[:2]
    backend = _BACKENDS.get(written_backend)
    if backend is None:
        raise ConfigurationError(
            "Unsupported database '%s'. Glance runs on mysql (MariaDB), postgresql "
            "and sqlite." % drivername)
    run = _DRIVERS_RUN[backend]
    # The driver written, when installed, is the answer: no other driver is imported.
    if written in run and driver_available(_DRIVER_MODULES[written]):
        return backend, written, None
    installed = [name for name in run if driver_available(_DRIVER_MODULES[name])]
    if written and written not in run and (backend, written) not in _REPLACED:
        raise ConfigurationError(
            "The database driver '%s' of %s:// is unknown or not one this collection runs: for %s "
            "it runs %s. Write %s." % (
                written, drivername, written_backend, _available(backend, installed),
                " or ".join("%s+%s://" % (written_backend, name) for name in installed or run)))
    if not installed:
        raise MissingDriver(DRIVERS[backend][1])
    warning = None
    if written:
        warning = ("The database URL names the driver %s (%s), which this host lacks: %s is used "
                   "instead. Write %s+%s:// to say so and silence this warning."
                   % (written, _REPLACED.get((backend, written), written), installed[0],
                      written_backend, installed[0]))
    return backend, installed[0], warning


def _available(backend, installed):
    if installed:
        return "the driver%s installed here: %s" % ("s" if len(installed) > 1 else "", ", ".join(installed))
    return "%s, which is not installed here" % " or ".join(_DRIVERS_RUN[backend])


def driver_warning(raw):
    """The warning choose_driver gives for the URL ``raw``, or None (refusals raise)."""
    match = re.match(r"^\s*([\w+]+)://", raw or "")
    return choose_driver(match.group(1))[2] if match else None


def read_config_files(config_file=None, config_dir=None):
    """The ``[database] connection`` value of Glance's config files, or an error."""
    from . import glance_conf  # here: a run given ``connection`` never pays for the reader
    return glance_conf.read(config_file, config_dir).connection


def raw_url(connection=None, config_file=None, config_dir=None, redactor=None):
    """The database URL as written, from the option or the config files.

    Its password joins ``redactor`` before anything parses it, and an ambiguous
    URL (an unencoded '@' in its password) is refused here, whichever source gave it.
    """
    return url_and_source(connection, config_file, config_dir, redactor)[0]


def url_and_source(connection=None, config_file=None, config_dir=None, redactor=None):
    """raw_url(), and where it came from: "connection", or the config file that set it."""
    if connection:
        raw, source = connection, "connection"
    else:
        from . import glance_conf
        conf = glance_conf.read(config_file, config_dir)
        raw, source = conf.connection, conf.source
    if redactor is not None:
        redactor.add_url(raw)
    refuse_ambiguous(raw)
    refuse_no_database(raw)
    return raw, source


def resolve_url(raw, redactor=None):
    """Parse a database URL (raw_url's) into a sa URL with the driver this host has."""
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


class MissingDriver(GlanceDbError):
    """The Python driver for the database is not installed on the managed host."""

    def __init__(self, library):
        self.library = library
        super(MissingDriver, self).__init__(library)


def display_url(url):
    """The URL with its password masked, for messages and results."""
    return url.render_as_string(hide_password=True)


# Seconds a MySQL/MariaDB statement may go unanswered (PyMySQL waits for ever
# otherwise, e.g. on a frozen Galera node): above the longest statement, a table
# rebuild; the writing modules' read_timeout option. Reads alone need less.
DIRECT_READ_TIMEOUT = 60


def create_engine(url, read_timeout=None):
    """An engine that fails fast and whose errors carry no password."""
    args = {}
    if url.get_backend_name() == "mysql":
        args["connect_timeout"] = CONNECT_TIMEOUT
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
            cparams["password"] = _mysql_password(cparams["password"])


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
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    lower = text.lower()
    where = display_url(url)
    server = "%s:%s" % (url.host, url.port or _DEFAULT_PORTS.get(_backend_of(url), ""))
    code = original.args[0] if getattr(original, "args", None) else None
    if code in (1044, 1049) or ("database" in lower and "does not exist" in lower):
        # 1044: the user may not use a database of that name (often: it does not exist)
        hint = ("check the database name '%s': create it (CREATE DATABASE %s) and grant the user "
                "all privileges on it (GRANT ALL PRIVILEGES ON %s.* TO ...)"
                % (url.database, url.database, url.database))
    elif code == 1045 and not (getattr(url, "query", None) or {}).get("ssl_cert"):
        # MariaDB refuses an account that requires TLS (REQUIRE SSL/X509) with the
        # same 1045 as a wrong password: name both.
        hint = ("the server refused this user: if its account requires TLS (REQUIRE SSL or X509), give "
                "the URL its client certificate, ?ssl_ca=CA.pem&ssl_cert=CERT.pem&ssl_key=KEY.pem; "
                "otherwise check the user name and password")
    elif code == 1045 or "password authentication failed" in lower or "access denied" in lower:
        hint = "check the user name and password"
    elif code in (2006, 2013):  # the server went away or stopped answering mid-query
        hint = ("the server at %s stopped answering (killed, restarted or frozen; a query waits at "
                "most read_timeout seconds): check that node; on Galera, run again through another "
                "node, which completes the phase" % server)
    elif code == 1047:  # ER_UNKNOWN_COM_ERROR: a Galera node outside the Primary component
        hint = ("this Galera node (%s) is not part of the cluster's Primary component or not "
                "Synced: run through another node, or wait until it has rejoined" % server)
    elif "timed out" in lower or "timeout expired" in lower:
        hint = ("%s did not answer within %d seconds: check the host name and port, that the server "
                "is running, and that no firewall drops the connection" % (server, CONNECT_TIMEOUT))
    elif code in (2003, 2005) or "could not connect" in lower or "connection refused" in lower \
            or "failed to resolve" in lower or "name or service not known" in lower:
        hint = ("check that the server at %s is running and reachable from this host; on Galera, "
                "another node can run the phase" % server)
    elif code == 1142 or "permission denied" in lower or "readonly database" in lower \
            or "read-only" in lower:
        hint = ("this database user may read but not change the schema: grant it all privileges "
                "on the Glance database, or use the user glance-manage uses")
    elif "unable to open database file" in lower:
        hint = "check that the SQLite file's directory exists and is writable"
    else:
        hint = "the database server's log may say more"
    return "Cannot use the database at %s: %s (%s)." % (where, text, hint)


_DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}


def _backend_of(url):
    return url.get_backend_name() if hasattr(url, "get_backend_name") else url.backend


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


# ---- plain URLs, opened with the driver alone (reads of glance_db_facts, the no-op fast path)
_PLAIN_URL = re.compile(
    r"^(?P<drivername>(?:mysql|mariadb|postgresql|postgres|sqlite)(?:\+\w+)?)://"
    r"(?:(?P<username>[^:/@]*)(?::(?P<password>[^@]*))?@)?"
    r"(?P<host>[^/:?@]*)(?::(?P<port>\d+))?/(?P<database>[^?]*)(?:\?(?P<query>.*))?$")


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


def password_of(raw):
    """The password written in a database URL, decoded, or None."""
    info = user_info(raw)
    return unquote(info.split(":", 1)[1]) if info and ":" in info else None


class PlainUrl(object):
    """A database URL whose query options, if any, the driver alone can take; parsed
    without SQLAlchemy."""

    def __init__(self, match, query):
        self.backend, self.driver, _warning = choose_driver(match.group("drivername"))
        self.username = unquote(match.group("username")) if match.group("username") else None
        self.password = unquote(match.group("password")) if match.group("password") else None
        self.host = match.group("host") or None
        self.port = int(match.group("port")) if match.group("port") else None
        self.database = match.group("database")
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


def parse_plain_url(raw):
    """A PlainUrl when the driver alone can open ``raw``, else None (SQLAlchemy opens it)."""
    match = _PLAIN_URL.match((raw or "").strip())
    if not match or not match.group("database") or "%" in match.group("database"):
        return None
    query = _query(match.group("query"))
    if query is None:
        return None
    url = PlainUrl(match, query)
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
    postgres = driver(_DRIVER_MODULES[url.driver])
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
            args["password"] = _mysql_password(url.password)
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
    a connect's time. The settings are PyMySQL's own (tests/unit/test_direct_tls.py
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


def _mysql_password(password):
    """PyMySQL sends a str password as Latin-1 (and fails beyond it); the server
    hashed the UTF-8 bytes a UTF-8 client sent when the account was made."""
    return password.encode("utf-8") if isinstance(password, str) else password
