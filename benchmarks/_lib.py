"""What the benchmarks share: our engine, scratch databases, the module
payloads Ansible ships, real glance-manage, timing and the output conventions.

Not a benchmark itself (benchmarks/run runs only the scripts it names).

The engine is imported as Ansible names it (ansible_collections.openstack_ops.glance),
through the same .build/collections symlink the tests use.

How our modules are timed: Ansible builds one self-contained file per task
(AnsiballZ: the module and the module_utils it imports, zipped into a Python
wrapper with the task's arguments) and the managed host runs it with its
Python. We let real ansible-core build those files once (a local play with
ANSIBLE_KEEP_REMOTE_FILES=1) and then time `python AnsiballZ_<module>.py`
as a whole process: exactly what a managed host executes, minus SSH and the
controller's own work.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

REPO = Path(__file__).resolve().parents[1]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
COLLECTIONS = REPO / ".build" / "collections"
ENGINES = ("sqlite", "mysql", "postgresql")

MYSQL = dict(host="127.0.0.1", port=3306, user="root", password="")
POSTGRES = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")


def link_collection():
    """The collection seen under an ansible_collections/ path (as the tests do)."""
    subprocess.run(["bash", str(REPO / "scripts" / "collection-link")], check=True, stdout=subprocess.DEVNULL)


link_collection()
sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (  # noqa: E402
    connection, phases,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import GRAPH  # noqa: E402


def parse_args(description, repeats, smoke_repeats):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true",
                        help="fewer repeats (%d instead of %d): proves the benchmark runs"
                        % (smoke_repeats, repeats))
    parser.add_argument("--repeats", type=int, help="timed runs per measurement")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of %s"
                        % ", ".join(ENGINES))
    parser.add_argument("--images", type=int, help="ignored (accepted like the other benchmarks)")
    parser.add_argument("--out", help="directory to write the JSON result into")
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = smoke_repeats if args.smoke else repeats
    args.engines = [e for e in args.engines.split(",") if e]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        parser.error("unknown engine(s): %s" % ", ".join(sorted(unknown)))
    return args


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---- scratch databases (bench_ prefix, dropped afterwards)
def use_mysql_server(url):
    """Make the MySQL scratch databases on the server at ``url``
    (mysql+pymysql://USER[:PASSWORD]@HOST:PORT/) instead of the shared one."""
    parts = urlsplit(url)
    MYSQL.update(host=parts.hostname, port=parts.port or 3306, user=unquote(parts.username or "root"),
                 password=unquote(parts.password or ""))


def mysql_server():
    """The URL of the server the MySQL scratch databases are made on, ending in /."""
    password = ":" + quote(MYSQL["password"], safe="") if MYSQL["password"] else ""
    return "mysql+pymysql://%s%s@%s:%d/" % (quote(MYSQL["user"], safe=""), password, MYSQL["host"],
                                            MYSQL["port"])


class ScratchDatabase(object):
    """One empty database of an engine, re-creatable between timed runs."""

    def __init__(self, engine, tag, workdir):
        self.engine = engine
        self.name = "bench_%s_%d_%s" % (tag, os.getpid(), engine)
        self.path = Path(workdir) / ("%s.sqlite" % self.name)

    @property
    def url(self):
        """The URL our modules take."""
        if self.engine == "sqlite":
            return "sqlite:///%s" % self.path
        if self.engine == "mysql":
            return mysql_server() + self.name
        return "postgresql+psycopg://postgres@127.0.0.1:5432/%s" % self.name

    @property
    def glance_url(self):
        """The URL real Glance takes (its PostgreSQL driver is psycopg2)."""
        return self.url.replace("+psycopg:", "+psycopg2:")

    def create(self):
        self.drop()
        if self.engine == "mysql":
            _mysql_admin("CREATE DATABASE %s" % self.name)
        elif self.engine == "postgresql":
            _postgres_admin('CREATE DATABASE %s' % self.name)

    def drop(self):
        if self.engine == "sqlite":
            for suffix in ("", "-journal", ".migration-lock"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
        elif self.engine == "mysql":
            _mysql_admin("DROP DATABASE IF EXISTS %s" % self.name)
        else:
            _postgres_admin("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)

    def version_rows(self):
        """alembic_version, sorted ([] when the table is missing)."""
        query = "SELECT version_num FROM alembic_version"
        try:
            if self.engine == "sqlite":
                import sqlite3
                conn = sqlite3.connect(str(self.path))
                try:
                    return sorted(r[0] for r in conn.execute(query))
                finally:
                    conn.close()
            if self.engine == "mysql":
                import pymysql
                conn = pymysql.connect(database=self.name, **MYSQL)
            else:
                import psycopg
                conn = psycopg.connect(**dict(POSTGRES, dbname=self.name))
            try:
                with conn.cursor() as cur:
                    cur.execute(query)
                    return sorted(r[0] for r in cur.fetchall())
            finally:
                conn.close()
        except Exception:
            return []


def _mysql_admin(sql):
    import pymysql
    conn = pymysql.connect(autocommit=True, **MYSQL)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _postgres_admin(sql):
    import psycopg
    with psycopg.connect(autocommit=True, **POSTGRES) as conn:
        conn.execute(sql)


# ---- our engine, in this process
def engine_for(url):
    """An engine made the way the modules make theirs."""
    return connection.create_engine(connection.resolve_url(url))


def sync_with_engine(url):
    """Bring a database to the heads with our engine, in this process."""
    engine = engine_for(url)
    try:
        phases.run(engine, "sync")
    finally:
        engine.dispose()


# ---- the payloads Ansible runs on a managed host
def heads():
    """alembic_version at the heads, from the revision graph: one row (the contract head needs the expand one)."""
    return GRAPH.rows_for(set(GRAPH.by_id))


def build_payloads(module, connections, workdir, module_args=None):
    """Have ansible-core build (and run once) the AnsiballZ file of ``module``
    for each connection URL (plus ``module_args``); return {url: path of the
    kept AnsiballZ file}."""
    workdir = Path(workdir)
    remote = workdir / "ansible-remote"
    tasks = [{"name": "payload %d" % i,
              "openstack_ops.glance.%s" % module: dict(module_args or {}, connection=url)}
             for i, url in enumerate(connections)]
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": str(VENV_PYTHON)}, "tasks": tasks}]
    playbook = workdir / ("payload-%s.yml" % module)
    playbook.write_text(json.dumps(play))  # JSON is YAML
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_KEEP_REMOTE_FILES="1",
               ANSIBLE_REMOTE_TMP=str(remote), ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-local"),
               ANSIBLE_HOME=str(workdir / "ansible-home"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_LOCALHOST_WARNING="False")
    before = set(remote.rglob("AnsiballZ_%s.py" % module)) if remote.exists() else set()
    done = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,",
                           str(playbook)], env=env, cwd=str(workdir), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError("ansible-playbook failed to build the %s payloads:\n%s%s"
                           % (module, done.stdout[-3000:], done.stderr[-3000:]))
    found = {}
    for path in set(remote.rglob("AnsiballZ_%s.py" % module)) - before:
        found[_payload_connection(path)] = path
    missing = [url for url in connections if url not in found]
    if missing:
        raise RuntimeError("no AnsiballZ payload kept for %s" % ", ".join(missing))
    return found


def _payload_connection(path):
    """The connection argument embedded in an AnsiballZ wrapper."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "params":
            return json.loads(ast.literal_eval(node.value))["ANSIBLE_MODULE_ARGS"]["connection"]
    raise RuntimeError("%s has no params" % path)


def run_payload(path, expect_changed=None):
    """Time one AnsiballZ run as the managed host does it; return (seconds, result)."""
    seconds, done = timed([str(VENV_PYTHON), str(path)])
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise RuntimeError("%s printed no JSON (exit %d):\n%s%s"
                           % (path.name, done.returncode, done.stdout[-2000:], done.stderr[-2000:]))
    if result.get("failed"):
        raise RuntimeError("%s failed: %s" % (path.name, result.get("msg")))
    if expect_changed is not None and result.get("changed") != expect_changed:
        raise RuntimeError("%s: changed=%s, expected %s"
                           % (path.name, result.get("changed"), expect_changed))
    return seconds, result


# ---- real Glance
def glance_manage():
    """Path of real glance-manage 33.0.0 (tests/parity/oracle-venv makes its virtualenv)."""
    done = subprocess.run(["bash", str(REPO / "tests" / "parity" / "oracle-venv")],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError("cannot make real Glance's virtualenv:\n" + done.stderr[-3000:])
    return str(Path(done.stdout.strip().splitlines()[-1]) / "bin" / "glance-manage")


def glance_config(db, workdir):
    conf = Path(workdir) / ("glance-%s.conf" % db.engine)
    conf.write_text("[database]\nconnection = %s\n" % db.glance_url)
    return conf


def run_glance(manage, conf, command, workdir, ok_codes=(0,)):
    """Time one `glance-manage db COMMAND` process; return (seconds, exit code)."""
    seconds, done = timed([manage, "--config-file", str(conf), "db", command], cwd=str(workdir))
    if done.returncode not in ok_codes:
        raise RuntimeError("glance-manage db %s exited %d:\n%s%s"
                           % (command, done.returncode, done.stdout[-2000:], done.stderr[-2000:]))
    return seconds, done.returncode


# ---- timing and results
def timed(argv, cwd=None, stdin=None):
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, stdin=stdin, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done


def summary(runs):
    """Median and spread of a list of seconds."""
    return {"median": round(statistics.median(runs), 3), "min": round(min(runs), 3),
            "max": round(max(runs), 3), "runs": [round(r, 3) for r in runs]}


def interleaved_rounds(dbs, kinds_of, run_once, repeats, label):
    """Time run_once(db, kind) for every database and contender, ``repeats`` rounds,
    the contenders' order rotating each round so background load hits them alike.
    Returns {engine: {kind: [seconds, ...]}}."""
    times = dict((db.engine, dict((kind, []) for kind in kinds_of(db))) for db in dbs)
    for round_no in range(repeats):
        for db in dbs:
            kinds = list(times[db.engine])
            shift = round_no % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                times[db.engine][kind].append(run_once(db, kind))
        log("%s: round %d/%d done" % (label, round_no + 1, repeats))
    return times


def percentiles(values):
    """p50, p99 and max of a list of latencies in seconds, as milliseconds."""
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q):
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"n": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99),
            "max_ms": round(1000 * ordered[-1], 2)}


def compared(by_kind, goal):
    """Each contender's summary, plus ours/glance and whether it meets ``goal``
    when glance ran."""
    entry = dict((kind, summary(runs)) for kind, runs in by_kind.items())
    if "glance" in entry:
        ratio = entry["ours"]["median"] / entry["glance"]["median"]
        entry.update(ratio_ours_to_glance=round(ratio, 3), goal_ratio=round(goal, 3),
                     goal_met=ratio <= goal)
    return entry


def result_header(name, args, method, engines):
    """The fields every whole-process benchmark's JSON starts with."""
    return {"benchmark": name, "statistic": "median wall seconds of whole processes",
            "repeats": args.repeats, "smoke": args.smoke, "method": method,
            "machine": machine(), "servers": server_versions(args.engines), "engines": engines,
            "goals_met": all(e["goal_met"] for e in engines.values() if "goal_met" in e)}


def run_main(name, main):
    """Run a benchmark's main; a failure to run is one line on stderr and exit 1."""
    try:
        main()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print("%s: FAILED: %s" % (name, exc), file=sys.stderr)
        sys.exit(1)


def machine():
    """What the figures were measured on."""
    info = {"nproc": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}
    try:
        with open("/proc/meminfo") as handle:
            kib = int(handle.readline().split()[1])
        info["ram_gib"] = round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def server_versions(engines):
    versions = {}
    for engine in engines:
        try:
            if engine == "sqlite":
                import sqlite3
                versions[engine] = sqlite3.sqlite_version
            elif engine == "mysql":
                import pymysql
                conn = pymysql.connect(**MYSQL)
                with conn.cursor() as cur:
                    cur.execute("SELECT VERSION()")
                    versions[engine] = cur.fetchone()[0]
                conn.close()
            else:
                import psycopg
                with psycopg.connect(**POSTGRES) as conn:
                    versions[engine] = conn.execute("SHOW server_version").fetchone()[0]
        except Exception as exc:  # reported, not fatal: the benchmark fails later anyway
            versions[engine] = "unknown (%s)" % exc
    return versions


def workdir(tag):
    return Path(tempfile.mkdtemp(prefix="bench_%s_" % tag))


@contextlib.contextmanager
def scratch_databases(engines, tag):
    """A work directory and one empty scratch database per engine, all removed afterwards."""
    directory = workdir(tag)
    dbs = [ScratchDatabase(engine, tag[:2], directory) for engine in engines]
    try:
        for db in dbs:
            db.create()
        yield directory, dbs
    finally:
        for db in dbs:
            db.drop()
        remove(directory)


def remove(path):
    shutil.rmtree(str(path), ignore_errors=True)


def finish(result, out, filename, line):
    """Write DIR/filename when asked, then the one-line summary and the JSON last line
    (benchmarks/_report.py reads both)."""
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / filename).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(line)
    print(json.dumps(result, sort_keys=True))
