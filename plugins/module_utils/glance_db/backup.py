# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A consistent dump of the Glance database, taken before an upgrade changes it.

MySQL/MariaDB: ``mysqldump --single-transaction`` (InnoDB snapshot, no table
locks, so the API keeps running). PostgreSQL: ``pg_dump`` in custom format.
SQLite: the online backup API (what the sqlite3 shell's ``.backup`` does).
The password reaches a dump tool only as MYSQL_PWD or PGPASSWORD, never on a
command line.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import sqlite3
import time

from .errors import GlanceDbError

EXTENSIONS = {"mysql": "sql", "postgresql": "dump", "sqlite": "sqlite"}
TOOLS = {"mysql": "mysqldump", "postgresql": "pg_dump", "sqlite": "sqlite3 backup API"}


class BackupError(GlanceDbError):
    """The dump could not be taken."""


def planned_path(url, directory):
    """Where the dump of ``url`` goes in ``directory``: a name no earlier dump has."""
    backend = url.get_backend_name()
    name = os.path.splitext(os.path.basename(url.database or ""))[0] or "glance"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(directory, "glance-%s-%s" % (name, stamp))
    path, n = "%s.%s" % (base, EXTENSIONS[backend]), 1
    while os.path.exists(path):
        n += 1
        path = "%s-%d.%s" % (base, n, EXTENSIONS[backend])
    return path


def take(url, directory, run_command, mysqldump="mysqldump", pg_dump="pg_dump"):
    """Dump the database to a new file in ``directory``; returns what the result reports.

    ``run_command(argv, environ_update)`` runs a dump tool and returns
    ``(rc, stdout, stderr)``, as AnsibleModule.run_command does.
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
    old_umask = os.umask(0o077)  # the dump holds every image record: owner only
    try:
        if backend == "mysql":
            _run(run_command, _mysqldump_command(url, mysqldump, partial), "MYSQL_PWD", url.password)
        elif backend == "postgresql":
            _run(run_command, _pg_dump_command(url, pg_dump, partial), "PGPASSWORD", url.password)
        else:
            _sqlite_backup(url.database, partial)
        os.rename(partial, path)  # a dump that did not finish never looks finished
    finally:
        os.umask(old_umask)
        if os.path.exists(partial):
            os.unlink(partial)
    size = os.path.getsize(path)
    if size == 0:
        raise BackupError("The dump %s is empty." % path)
    return dict(path=path, sha256=_sha256_of(path), size=size, engine=backend,
                database=url.database, tool=TOOLS[backend],
                seconds=round(time.monotonic() - started, 3))


def _mysqldump_command(url, tool, dest):
    command = [tool, "--single-transaction", "--quick", "--no-tablespaces", "--triggers",
               "--result-file=" + dest]
    socket = url.query.get("unix_socket")
    if socket:
        command.append("--socket=" + (socket if isinstance(socket, str) else socket[-1]))
    else:  # as PyMySQL connects: over TCP, localhost included
        command += ["--protocol=TCP", "--host=" + (url.host or "localhost")]
        if url.port:
            command.append("--port=%d" % url.port)
    if url.username:
        command.append("--user=" + url.username)
    return command + ["--", url.database]


def _pg_dump_command(url, tool, dest):
    command = [tool, "--format=custom", "--no-password", "--file=" + dest]
    if url.host:
        command.append("--host=" + url.host)
    if url.port:
        command.append("--port=%d" % url.port)
    if url.username:
        command.append("--username=" + url.username)
    return command + ["--dbname=" + url.database]


def _sqlite_backup(path, dest):
    if path == ":memory:" or not os.path.isfile(path):
        raise BackupError("The SQLite database file %s does not exist." % path)
    source = sqlite3.connect("file:%s?mode=ro" % os.path.abspath(path), uri=True)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _run(run_command, command, password_variable, password):
    if not shutil.which(command[0]):
        raise BackupError("Cannot run %s: not found. Install it, or name it with the module's %s option."
                          % (command[0], "mysqldump" if password_variable == "MYSQL_PWD" else "pg_dump"))
    rc, out, err = run_command(command, {password_variable: password} if password else {})
    if rc != 0:
        lines = (err or out or "").strip().splitlines()
        raise BackupError("%s failed (exit %d): %s" % (os.path.basename(command[0]), rc,
                                                       " ".join(lines[-3:]) or "no message"))


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
