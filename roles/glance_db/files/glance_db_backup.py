# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Take a consistent dump of the Glance database; the glance_db role's backup step.

The database URL comes from the standard input (--connection-on-stdin; never
from the command line or the environment), or from ``[database] connection`` of
Glance's config files, read as the collection's modules read them: the files in order, then the
``*.conf`` files of the config directory in name order, a later value winning.

MySQL/MariaDB: mysqldump --single-transaction. PostgreSQL: pg_dump (custom
format). SQLite: SQLite's online backup API (what the sqlite3 shell's .backup
does). The password reaches the dump tool only through MYSQL_PWD or PGPASSWORD.

Prints one JSON object: the dump's path, sha256 and size, or ``failed`` and a
``msg`` that never holds the password. Standard library only.
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from urllib.parse import parse_qs, quote, quote_plus, unquote

# SQLAlchemy's URL grammar: dialect[+driver]://[user[:password]@][host][:port][/database][?query]
URL_PATTERN = re.compile(r"""
    ^(?P<name>[\w+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?$
    """, re.X)

EXTENSIONS = {"mysql": "sql", "postgresql": "dump", "sqlite": "sqlite"}


class BackupError(Exception):
    """A failure to report as the result's msg."""


def read_config_url(config_files, config_dir):
    """``[database] connection`` of Glance's config files (see the module docstring)."""
    files = list(config_files)
    if config_dir:
        if not os.path.isdir(config_dir):
            raise BackupError("config_dir %s is not a directory." % config_dir)
        files += sorted(os.path.join(config_dir, name) for name in os.listdir(config_dir)
                        if name.endswith(".conf"))
    url = None
    for path in files:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            with open(path) as handle:
                parser.read_file(handle)
        except (OSError, configparser.Error) as exc:
            raise BackupError("Cannot read %s: %s" % (path, getattr(exc, "strerror", None) or exc))
        if parser.has_option("database", "connection"):
            url = parser.get("database", "connection").strip()
    if not url:
        raise BackupError("No [database] connection found in %s." % (", ".join(files) or "no file"))
    return url


def parse_url(raw):
    match = URL_PATTERN.match(raw)
    if not match:
        raise BackupError("The database URL is malformed.")
    parts = match.groupdict()
    backend = parts["name"].split("+", 1)[0]
    backend = {"mariadb": "mysql", "postgres": "postgresql"}.get(backend, backend)
    if backend not in EXTENSIONS:
        raise BackupError("Cannot back up a '%s' database: mysql, postgresql and sqlite are "
                          "supported." % backend)
    query = parse_qs(parts["query"] or "")
    return {
        "backend": backend,
        "username": unquote(parts["username"]) if parts["username"] else None,
        "password": unquote(parts["password"]) if parts["password"] is not None else None,
        "host": parts["ipv6host"] or parts["ipv4host"],
        "port": parts["port"] or None,
        "database": unquote(parts["database"]) if parts["database"] else None,
        "socket": (query.get("unix_socket") or [None])[-1],
    }


class Redactor(object):
    """Removes the password, raw or URL-encoded, from any text."""

    def __init__(self, secret):
        self.forms = sorted({f for f in (secret, quote(secret or "", safe=""), quote_plus(secret or ""))
                             if f}, key=len, reverse=True)

    def __call__(self, text):
        for form in self.forms:
            text = text.replace(form, "********")
        return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1********@", text)


def dump_mysql(url, dest, tools):
    command = [tools["mysqldump"], "--single-transaction", "--quick", "--no-tablespaces",
               "--triggers", "--result-file=" + dest]
    if url["socket"]:
        command += ["--socket=" + url["socket"]]
    else:  # like PyMySQL: TCP, also for localhost
        command += ["--protocol=TCP", "--host=" + (url["host"] or "localhost")]
        if url["port"]:
            command += ["--port=" + url["port"]]
    if url["username"]:
        command += ["--user=" + url["username"]]
    command += ["--", url["database"]]
    run(command, {"MYSQL_PWD": url["password"]} if url["password"] else {})


def dump_postgresql(url, dest, tools):
    command = [tools["pg_dump"], "--format=custom", "--no-password", "--file=" + dest]
    if url["host"]:
        command += ["--host=" + url["host"]]
    if url["port"]:
        command += ["--port=" + url["port"]]
    if url["username"]:
        command += ["--username=" + url["username"]]
    command += ["--dbname=" + url["database"]]
    run(command, {"PGPASSWORD": url["password"]} if url["password"] else {})


def dump_sqlite(url, dest, tools):
    path = url["database"]
    if not path or path == ":memory:" or not os.path.isfile(path):
        raise BackupError("The SQLite database file %s does not exist." % path)
    source = sqlite3.connect("file:%s?mode=ro" % quote(os.path.abspath(path)), uri=True)
    target = sqlite3.connect(dest)
    try:
        with target:
            source.backup(target)
    finally:
        target.close()
        source.close()


DUMPERS = {"mysql": dump_mysql, "postgresql": dump_postgresql, "sqlite": dump_sqlite}
TOOLS = {"mysql": "mysqldump", "postgresql": "pg_dump", "sqlite": "sqlite3 backup API"}


def run(command, secret_env):
    env = dict(os.environ)
    env.update(secret_env)
    try:
        done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, check=False)
    except OSError as exc:
        raise BackupError("Cannot run %s: %s" % (command[0], exc.strerror))
    if done.returncode != 0:
        lines = (done.stderr or done.stdout or "").strip().splitlines()
        raise BackupError("%s failed (exit %d): %s" % (os.path.basename(command[0]), done.returncode,
                                                       " ".join(lines[-3:]) or "no message"))


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backup(url, directory, tools):
    if not url["database"]:
        raise BackupError("The database URL names no database.")
    if not os.path.isdir(directory):
        raise BackupError("The backup directory %s does not exist." % directory)
    name = os.path.splitext(os.path.basename(url["database"]))[0] or "glance"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(directory, "glance-%s-%s" % (name, stamp))
    dest, n = "%s.%s" % (base, EXTENSIONS[url["backend"]]), 1
    while os.path.exists(dest):
        n += 1
        dest = "%s-%d.%s" % (base, n, EXTENSIONS[url["backend"]])
    partial = dest + ".partial"
    started = time.monotonic()
    try:
        DUMPERS[url["backend"]](url, partial, tools)
        os.rename(partial, dest)  # a dump that did not finish never looks finished
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return {
        "changed": True,
        "path": dest,
        "sha256": sha256_of(dest),
        "size": os.path.getsize(dest),
        "engine": url["backend"],
        "database": url["database"],
        "tool": TOOLS[url["backend"]],
        "seconds": round(time.monotonic() - started, 3),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="directory to write the dump to")
    parser.add_argument("--connection-on-stdin", action="store_true",
                        help="read the database URL from the standard input")
    parser.add_argument("--config-file", action="append", default=[])
    parser.add_argument("--config-dir")
    parser.add_argument("--mysqldump", default="mysqldump")
    parser.add_argument("--pg-dump", default="pg_dump")
    args = parser.parse_args(argv)
    os.umask(0o077)  # the dump holds every image record: owner only
    redact = Redactor(None)
    try:
        if args.connection_on_stdin:
            raw = sys.stdin.readline().strip()
        else:
            raw = read_config_url(args.config_file, args.config_dir)
        url = parse_url(raw)
        redact = Redactor(url["password"])
        result = backup(url, args.dir, {"mysqldump": args.mysqldump, "pg_dump": args.pg_dump})
    except BackupError as exc:
        result = {"failed": True, "msg": redact(str(exc))}
    except Exception as exc:  # still one line, still without the password
        result = {"failed": True, "msg": redact("%s: %s" % (type(exc).__name__, exc))}
    sys.stdout.write(json.dumps(result) + "\n")
    return 1 if result.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
