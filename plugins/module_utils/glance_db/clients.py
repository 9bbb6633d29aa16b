# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the servers' own clients reach the database a URL names.

backup (mysqldump, pg_dump) and restore (mysql, pg_restore) share it: the host,
port and user as command-line options, the URL's TLS options as the client's own
options (MariaDB/MySQL) or libpq's PGSSL* variables (PostgreSQL), and the
password only in the environment (MYSQL_PWD, PGPASSWORD), never on a command line.
"""

from __future__ import annotations

import os
import shutil

# The URL's TLS options, as PyMySQL (and SQLAlchemy's pymysql dialect) name them,
# and the MariaDB/MySQL clients' (mysql, mysqldump, mariadb-dump alike).
_MYSQL_TLS_FILES = (("ssl_ca", "--ssl-ca"), ("ssl_capath", "--ssl-capath"), ("ssl_cert", "--ssl-cert"),
                    ("ssl_key", "--ssl-key"), ("ssl_cipher", "--ssl-cipher"))
# psycopg hands the URL's query to libpq as it is; pg_dump and pg_restore read the same settings from these.
_PG_TLS_VARIABLES = (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"), ("sslcert", "PGSSLCERT"),
                     ("sslkey", "PGSSLKEY"), ("sslcrl", "PGSSLCRL"))


def query_value(url, name):
    """The URL's query value ``name`` (the last one when repeated), or None."""
    value = url.query.get(name)
    return value if value is None or isinstance(value, str) else value[-1]


def _flag(url, name):
    """True, False, or None when the URL does not say; as PyMySQL reads a query value."""
    value = query_value(url, name)
    return None if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def mysql_options(url):
    """Where a MariaDB/MySQL client connects and as whom, with the URL's TLS options."""
    options = []
    socket = query_value(url, "unix_socket")
    if socket:
        options.append("--socket=" + socket)
    else:  # as PyMySQL connects: over TCP, localhost included
        options += ["--protocol=TCP", "--host=" + (url.host or "localhost")]
        if url.port:
            options.append("--port=%d" % url.port)
    if url.username:
        options.append("--user=" + url.username)
    return options + _mysql_tls_options(url)


def _mysql_tls_options(url):
    """The client's TLS options for the URL's: the same files, and the server's certificate
    checked whenever PyMySQL checks it (a CA given, or ssl_verify_cert/ssl_verify_identity)."""
    if _flag(url, "ssl_disabled"):
        return ["--skip-ssl"]
    options = ["%s=%s" % (flag, query_value(url, name)) for name, flag in _MYSQL_TLS_FILES
               if query_value(url, name)]
    has_ca = query_value(url, "ssl_ca") or query_value(url, "ssl_capath")
    if _flag(url, "ssl_verify_identity") or _flag(url, "ssl_verify_cert") or (
            has_ca and _flag(url, "ssl_check_hostname") is not False and _flag(url, "ssl_verify_cert") is not False):
        options.append("--ssl-verify-server-cert")
    return options


def mysql_environment(url):
    return {"MYSQL_PWD": url.password}


def pg_options(url):
    """Where a PostgreSQL client connects and as whom (never asking for a password)."""
    options = ["--no-password"]
    if url.host:
        options.append("--host=" + url.host)
    if url.port:
        options.append("--port=%d" % url.port)
    if url.username:
        options.append("--username=" + url.username)
    return options


def pg_environment(url):
    """libpq's TLS variables from the URL's query, and the password."""
    environ = dict((variable, query_value(url, name)) for name, variable in _PG_TLS_VARIABLES)
    environ["PGPASSWORD"] = url.password
    return environ


def run(run_command, command, environ, option, error, pass_fds=(), stdin=None):
    """Run a client; ``environ`` (None values left out) is added to ours. ``stdin``: a descriptor
    the client reads as its standard input (the shell opens it: AnsibleModule.run_command can only
    write a string into it, and a dump can be gigabytes). A missing program or a non-zero exit
    raises ``error`` naming it (``option``: the module option naming the program) and the last
    lines it printed."""
    if not shutil.which(command[0]):
        raise error("Cannot run %s: not found. Install it, or name it with the module's %s option."
                    % (command[0], option))
    argv = list(command)
    if stdin is not None:
        # The program and its arguments reach the shell as "$@": nothing of them is parsed.
        argv = ["/bin/sh", "-c", 'exec "$@" <"/dev/fd/%d"' % stdin, "sh"] + argv
        pass_fds = tuple(pass_fds) + (stdin,)
    rc, stdout, stderr = run_command(argv, dict((key, value) for key, value in environ.items() if value),
                                     list(pass_fds))
    if rc != 0:
        # The mysql client frames a failed statement with lines of dashes: not worth a word of the message.
        lines = [line for line in (stderr or stdout or "").strip().splitlines() if line.strip("- ")]
        raise error("%s failed (exit %d): %s" % (os.path.basename(command[0]), rc,
                                                 " ".join(lines[-3:]) or "no message"))
