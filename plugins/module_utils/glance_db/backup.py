# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A consistent dump of the Glance database, taken before an upgrade changes it.

MySQL/MariaDB: ``mysqldump --single-transaction`` (InnoDB snapshot, no table
locks, so the API keeps running). PostgreSQL: ``pg_dump`` in custom format.
SQLite: the online backup API (what the sqlite3 shell's ``.backup`` does).
The password reaches a dump tool only as MYSQL_PWD or PGPASSWORD, never on a
command line; the URL's TLS options reach it as its own options (mysqldump) or
libpq's PGSSL* variables (pg_dump) (clients.py, shared with restore).

Beside each dump, ``<dump>.json`` records what restore checks before it touches
anything: the dump's sha256 and size, the engine, database and tool, and the
revisions and rows per table the database held (read just after the dump: with
the API writing meanwhile the dump may hold a few rows less).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time

from . import clients
from . import connection as db_connection
from . import state as db_state
from .deps import sa
from .errors import GlanceDbError

EXTENSIONS = {"mysql": "sql", "postgresql": "dump", "sqlite": "sqlite"}
TOOLS = {"mysql": "mysqldump", "postgresql": "pg_dump", "sqlite": "sqlite3 backup API"}
MANIFEST_SUFFIX = ".json"
MANIFEST_FORMAT = 1


class BackupError(GlanceDbError):
    """The dump could not be taken."""


def planned_path(url, directory):
    """Where the dump of ``url`` goes in ``directory``: a name no earlier dump has."""
    backend = url.get_backend_name()
    name = os.path.splitext(os.path.basename(url.database or ""))[0] or "glance"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(directory, "glance-%s-%s" % (name, stamp))
    path, n = "%s.%s" % (base, EXTENSIONS[backend]), 1
    while os.path.lexists(path) or os.path.lexists(manifest_path(path)):  # a dangling link is taken too
        n += 1
        path = "%s-%d.%s" % (base, n, EXTENSIONS[backend])
    return path


def manifest_path(dump):
    """Where the record of ``dump`` is."""
    return dump + MANIFEST_SUFFIX


def describe(engine):
    """What the database holds: ``{"revisions", "rows": {table: count}, "size": bytes}``.

    Every table counts (alembic_version aside: its rows are the revisions), a stopped
    run's leftovers included: a restore replaces them too. Reads only, and reads any
    state, a half-restored one included (no data migration's rows are counted)."""
    if db_state.missing_sqlite_file(engine.url):
        return {"revisions": [], "rows": {}, "size": 0}
    with engine.connect() as conn:
        state = db_state._read(db_state.on_connection(conn), count=False)  # pylint: disable=protected-access
        quote = conn.dialect.identifier_preparer.quote
        rows = dict((table, conn.execute(sa.text("SELECT COUNT(*) FROM %s" % quote(table))).scalar())
                    for table in state.tables)
        size = _size(conn, state)
        conn.rollback()
    return {"revisions": state.as_facts()["revisions"], "rows": rows, "size": size}


def _size(conn, state):
    """Bytes the database takes: its tables' data and indexes (MySQL), the database (PostgreSQL), the file."""
    if state.engine_name == "mysql":
        return sum(sizes["data"] + sizes["indexes"] for sizes in state.table_sizes.values())
    if state.engine_name == "postgresql":
        return conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
    return os.path.getsize(conn.engine.url.database)


def take(url, directory, run_command, mysqldump="mysqldump", pg_dump="pg_dump"):
    """Dump the database to a new file in ``directory``, with its record beside it
    (``<dump>.json``); returns what the result reports.

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
    if backend == "sqlite" and (url.database == ":memory:" or not os.path.isfile(url.database)):
        raise BackupError("The SQLite database file %s does not exist." % url.database)
    path = planned_path(url, directory)
    partial = path + ".partial"
    started = time.monotonic()
    taken_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    made = [partial]
    out = _create(partial)
    try:
        with out:
            # The tool opens /dev/fd/N, our descriptor: the name in ``directory`` is never looked up again.
            dest = "/dev/fd/%d" % out.fileno()
            if backend == "mysql":
                clients.run(run_command, _mysqldump_command(url, mysqldump, dest), clients.mysql_environment(url),
                            "mysqldump", BackupError, pass_fds=[out.fileno()])
            elif backend == "postgresql":
                clients.run(run_command, _pg_dump_command(url, pg_dump, dest), clients.pg_environment(url),
                            "pg_dump", BackupError, pass_fds=[out.fileno()])
            else:
                _sqlite_backup(url.database, out, directory)
        size = os.path.getsize(partial)
        if size == 0:
            raise BackupError("The dump of %s is empty: nothing was kept." % url.database)
        # After the dump tool: it is the first to connect, so its own refusal is what a run reports.
        held = _held(url)
        result = dict(path=path, sha256=sha256_of(partial), size=size, engine=backend,
                      database=url.database, tool=TOOLS[backend], taken_at=taken_at)
        manifest = manifest_path(path)
        made.append(manifest)
        with _create(manifest, "the dump's record") as record:
            record.write(json.dumps(dict(result, format=MANIFEST_FORMAT, path=os.path.basename(path), **held),
                                    indent=2, sort_keys=True).encode("utf-8") + b"\n")
        _publish(partial, path)
    except BaseException:
        for name in made:  # ours: _create made them (a dump published already is kept)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        raise
    return dict(result, manifest=manifest, revisions=held["revisions"], rows=held["rows"],
                seconds=round(time.monotonic() - started, 3))


def _held(url):
    """What the database holds now (describe), on an engine of its own."""
    engine = db_connection.create_engine(url)
    try:
        held = describe(engine)
    finally:
        engine.dispose()
    return {"revisions": held["revisions"], "rows": held["rows"]}


def _create(path, what="the dump"):
    """A new file at ``path``, mode 0600 (it holds every image record), opened for writing.

    O_EXCL refuses any name that exists, a link included: in a directory others
    may write to, a link planted under the next dump's name is never written through.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise BackupError("Refusing to write %s to %s: that name exists (a file or link this run did "
                          "not make). Remove it if it is not yours, or give another dest_dir that only "
                          "trusted users can write to." % (what, path))
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


def _mysqldump_command(url, tool, dest):
    return ([tool, "--single-transaction", "--quick", "--no-tablespaces", "--triggers", "--result-file=" + dest]
            + clients.mysql_options(url) + ["--", url.database])


def _pg_dump_command(url, tool, dest):
    return [tool, "--format=custom", "--file=" + dest] + clients.pg_options(url) + ["--dbname=" + url.database]


def _sqlite_backup(path, out, directory):
    """The online backup API writes through a path: it writes into a directory only
    this run can enter, and the copy goes into ``out``."""
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


def sha256_of(path):
    with open(path, "rb") as handle:
        return sha256_of_file(handle)


def sha256_of_file(handle):
    """The SHA-256 of what ``handle`` reads from where it stands to the end."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()
