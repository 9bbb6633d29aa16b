# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A consistent dump of the Glance database, taken before an upgrade changes it.

MySQL/MariaDB: ``mysqldump --single-transaction`` (InnoDB snapshot, no table
locks, so the API keeps running). PostgreSQL: ``pg_dump`` in custom format.
SQLite: the online backup API (what the sqlite3 shell's ``.backup`` does).
The password reaches a dump tool only as MYSQL_PWD or PGPASSWORD, never on a
command line; the URL's TLS options reach it as its own options (mysqldump) or
libpq's PGSSL* variables (pg_dump).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import shutil
import sqlite3
import tempfile
import time

from .errors import GlanceDbError

EXTENSIONS = {"mysql": "sql", "postgresql": "dump", "sqlite": "sqlite"}
TOOLS = {"mysql": "mysqldump", "postgresql": "pg_dump", "sqlite": "sqlite3 backup API"}


class BackupError(GlanceDbError):
    """The dump could not be taken."""


# The URL's TLS options, as PyMySQL (and SQLAlchemy's pymysql dialect) name them,
# and mysqldump's (MariaDB's mysqldump/mariadb-dump and MySQL's alike).
_MYSQL_TLS_FILES = (("ssl_ca", "--ssl-ca"), ("ssl_capath", "--ssl-capath"), ("ssl_cert", "--ssl-cert"),
                    ("ssl_key", "--ssl-key"), ("ssl_cipher", "--ssl-cipher"))
# psycopg hands the URL's query to libpq as it is; pg_dump reads the same settings from these.
_PG_TLS_VARIABLES = (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"), ("sslcert", "PGSSLCERT"),
                     ("sslkey", "PGSSLKEY"), ("sslcrl", "PGSSLCRL"))


def planned_path(url, directory):
    """Where the dump of ``url`` goes in ``directory``: a name no earlier dump has."""
    backend = url.get_backend_name()
    name = os.path.splitext(os.path.basename(url.database or ""))[0] or "glance"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(directory, "glance-%s-%s" % (name, stamp))
    path, n = "%s.%s" % (base, EXTENSIONS[backend]), 1
    while os.path.lexists(path):  # a dangling link is taken too
        n += 1
        path = "%s-%d.%s" % (base, n, EXTENSIONS[backend])
    return path


def take(url, directory, run_command, mysqldump="mysqldump", pg_dump="pg_dump"):
    """Dump the database to a new file in ``directory``; returns what the result reports.

    ``run_command(argv, environ_update, pass_fds)`` runs a dump tool and returns
    ``(rc, stdout, stderr)``, as AnsibleModule.run_command does. The tool writes
    into a file this call creates (never through a link, never over a file it did
    not make), inherited as a descriptor and named ``.partial`` until complete.
    """
    backend = url.get_backend_name()
    if not url.database:
        raise BackupError("The database URL names no database.")
    if not os.path.isdir(directory):
        raise BackupError("The backup directory %s does not exist. Create it, or give another dest_dir."
                          % directory)
    path = planned_path(url, directory)
    partial = path + ".partial"
    started = time.monotonic()
    out = _create(partial)
    try:
        with out:
            # The tool opens /dev/fd/N, our descriptor: the name in ``directory`` is never looked up again.
            dest = "/dev/fd/%d" % out.fileno()
            if backend == "mysql":
                _run(run_command, _mysqldump_command(url, mysqldump, dest), {"MYSQL_PWD": url.password}, out,
                     "mysqldump")
            elif backend == "postgresql":
                _run(run_command, _pg_dump_command(url, pg_dump, dest), _pg_environment(url), out, "pg_dump")
            else:
                _sqlite_backup(url.database, out, directory)
        _publish(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)  # ours: _create made it
        raise
    size = os.path.getsize(path)
    if size == 0:
        raise BackupError("The dump %s is empty." % path)
    return dict(path=path, sha256=_sha256_of(path), size=size, engine=backend,
                database=url.database, tool=TOOLS[backend],
                seconds=round(time.monotonic() - started, 3))


def _create(path):
    """A new file at ``path``, mode 0600 (it holds every image record), opened for writing.

    O_EXCL refuses any name that exists, a link included: in a directory others
    may write to, a link planted under the next dump's name is never written through.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise BackupError("Refusing to write the dump to %s: that name exists (a file or link this run did "
                          "not make). Remove it if it is not yours, or give another dest_dir that only "
                          "trusted users can write to." % path)
    return os.fdopen(fd, "wb")


def _publish(partial, path):
    """Give the complete dump its name, never replacing what is there (a link does not replace)."""
    try:
        os.link(partial, path)
    except FileExistsError:
        raise BackupError("Refusing to name the dump %s: that name appeared while the dump ran (a file or "
                          "link this run did not make). Remove it if it is not yours, or give another "
                          "dest_dir that only trusted users can write to." % path)
    except OSError:  # a filesystem without hard links
        if os.path.lexists(path):
            raise BackupError("Refusing to name the dump %s: that name exists." % path)
        os.rename(partial, path)
        return
    os.unlink(partial)


def _query_value(url, name):
    value = url.query.get(name)
    return value if value is None or isinstance(value, str) else value[-1]


def _flag(url, name):
    """True, False, or None when the URL does not say; as PyMySQL reads a query value."""
    value = _query_value(url, name)
    return None if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def _mysqldump_command(url, tool, dest):
    command = [tool, "--single-transaction", "--quick", "--no-tablespaces", "--triggers",
               "--result-file=" + dest]
    socket = _query_value(url, "unix_socket")
    if socket:
        command.append("--socket=" + socket)
    else:  # as PyMySQL connects: over TCP, localhost included
        command += ["--protocol=TCP", "--host=" + (url.host or "localhost")]
        if url.port:
            command.append("--port=%d" % url.port)
    if url.username:
        command.append("--user=" + url.username)
    return command + _mysql_tls_options(url) + ["--", url.database]


def _mysql_tls_options(url):
    """mysqldump's TLS options for the URL's: the same files, and the server's certificate
    checked whenever PyMySQL checks it (a CA given, or ssl_verify_cert/ssl_verify_identity)."""
    if _flag(url, "ssl_disabled"):
        return ["--skip-ssl"]
    options = ["%s=%s" % (flag, _query_value(url, name)) for name, flag in _MYSQL_TLS_FILES
               if _query_value(url, name)]
    has_ca = _query_value(url, "ssl_ca") or _query_value(url, "ssl_capath")
    if _flag(url, "ssl_verify_identity") or _flag(url, "ssl_verify_cert") or (
            has_ca and _flag(url, "ssl_check_hostname") is not False and _flag(url, "ssl_verify_cert") is not False):
        options.append("--ssl-verify-server-cert")
    return options


def _pg_dump_command(url, tool, dest):
    command = [tool, "--format=custom", "--no-password", "--file=" + dest]
    if url.host:
        command.append("--host=" + url.host)
    if url.port:
        command.append("--port=%d" % url.port)
    if url.username:
        command.append("--username=" + url.username)
    return command + ["--dbname=" + url.database]


def _pg_environment(url):
    environ = dict((variable, _query_value(url, name)) for name, variable in _PG_TLS_VARIABLES)
    environ["PGPASSWORD"] = url.password
    return environ


def _sqlite_backup(path, out, directory):
    """The online backup API writes through a path: it writes into a directory only
    this run can enter, and the copy goes into ``out``."""
    if path == ":memory:" or not os.path.isfile(path):
        raise BackupError("The SQLite database file %s does not exist." % path)
    private = tempfile.mkdtemp(prefix=".glance-backup-", dir=directory)
    try:
        copy = os.path.join(private, "copy.sqlite")
        source = sqlite3.connect("file:%s?mode=ro" % os.path.abspath(path), uri=True)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        with open(copy, "rb") as handle:
            shutil.copyfileobj(handle, out)
    finally:
        shutil.rmtree(private)


def _run(run_command, command, environ, out, option):
    """Run a dump tool that writes into ``out``; ``environ`` (None values left out) added to ours."""
    if not shutil.which(command[0]):
        raise BackupError("Cannot run %s: not found. Install it, or name it with the module's %s option."
                          % (command[0], option))
    rc, stdout, stderr = run_command(command, dict((key, value) for key, value in environ.items() if value),
                                     [out.fileno()])
    if rc != 0:
        lines = (stderr or stdout or "").strip().splitlines()
        raise BackupError("%s failed (exit %d): %s" % (os.path.basename(command[0]), rc,
                                                       " ".join(lines[-3:]) or "no message"))


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
