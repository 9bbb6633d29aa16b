"""Generate the golden schema dumps from REAL Glance (the oracle).

Run by make_golden.sh inside a throwaway virtualenv holding glance==33.0.0,
pymysql and psycopg2.  For each engine it walks one fresh database forward
with ``glance-manage db upgrade --version REV`` and dumps the schema after
each state with schema_dump.dump().  See tests/parity/README.md.
"""

import argparse
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time

import sqlalchemy as sa

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import schema_dump  # noqa: E402

ENGINES = ["sqlite", "mysql", "postgresql"]
_BRANCHED = re.compile(r"^(?P<release>.+)_(?P<branch>expand|contract)\d+$")


def glance_revisions():
    """Real Glance's revisions in the order Alembic applies them, and its heads.

    Read from the installed Glance's own migration scripts, so a new Glance in
    the oracle venv brings its new states without an edit here."""
    from alembic.script import ScriptDirectory  # the oracle venv's Alembic
    package = importlib.util.find_spec("glance").submodule_search_locations[0]
    script = ScriptDirectory(os.path.join(package, "db", "sqlalchemy", "alembic_migrations"))
    walked = [r.revision for r in reversed(list(script.walk_revisions()))]
    return walked, script.get_heads()


def release_states(walked):
    """Each pre-branch revision, then per release its newest expand and contract revision."""
    plain = [r for r in walked if not _BRANCHED.match(r)]
    releases, newest = [], {}
    for revision in walked:
        match = _BRANCHED.match(revision)
        if match:
            if match.group("release") not in releases:
                releases.append(match.group("release"))
            newest[match.group("release"), match.group("branch")] = revision
    return plain + [newest[release, branch] for release in releases for branch in ("expand", "contract")
                    if (release, branch) in newest]


WALKED, HEADS = glance_revisions()
STATES = release_states(WALKED)
PLAIN = [r for r in WALKED if not _BRANCHED.match(r)]
EXPAND_HEAD, = [h for h in HEADS if "_expand" in h]
CONTRACT_HEAD, = [h for h in HEADS if "_contract" in h]


def expected_rows(state, previous):
    """alembic_version rows Alembic leaves at ``state`` (one row per branch tip)."""
    if state in PLAIN or previous in PLAIN[-1:]:
        return [state]
    if "_contract" in state:
        return [state]
    return sorted([previous, state])


class Oracle:
    def __init__(self, args):
        self.args = args
        self.venv_bin = os.path.dirname(os.path.abspath(sys.executable))
        self.glance_manage = os.path.join(self.venv_bin, "glance-manage")
        self.tmp = tempfile.mkdtemp(prefix="glance-golden-")
        self.tag = "".join(random.choice(string.ascii_lowercase + string.digits)
                           for position in range(8))
        self.counter = 0
        self.created = []  # (engine, name)
        self.registry = args.registry  # file listing created DBs, for trap
        self.notes = {}
        self.problems = []

    # ---------------------------------------------------------------- dbs
    def admin_engine(self, engine):
        if engine == "mysql":
            return sa.create_engine(self.args.mysql_url + "/",
                                    isolation_level="AUTOCOMMIT")
        return sa.create_engine(self.args.pg_url + "/postgres",
                                isolation_level="AUTOCOMMIT")

    def new_db(self, engine):
        """Create a fresh database; return its SQLAlchemy URL."""
        self.counter += 1
        if engine == "sqlite":
            path = os.path.join(self.tmp, "golden_%d.db" % self.counter)
            return "sqlite:///" + path
        name = "golden_%s_%s_%d" % (engine, self.tag, self.counter)
        if self.registry:
            with open(self.registry, "a") as fh:
                fh.write("%s %s\n" % (engine, name))
        eng = self.admin_engine(engine)
        try:
            with eng.connect() as conn:
                if engine == "mysql":
                    conn.execute(sa.text(
                        "CREATE DATABASE `%s` CHARACTER SET utf8mb4 "
                        "COLLATE utf8mb4_general_ci" % name))
                else:
                    conn.execute(sa.text('CREATE DATABASE "%s"' % name))
        finally:
            eng.dispose()
        self.created.append((engine, name))
        if engine == "mysql":
            return "%s/%s" % (self.args.mysql_url, name)
        return "%s/%s" % (self.args.pg_url, name)

    def drop_all(self):
        for engine, name in reversed(self.created):
            drop_database(self.args, engine, name)
        self.created = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------ glance
    def conf_for(self, url):
        self.counter += 1
        path = os.path.join(self.tmp, "glance_%d.conf" % self.counter)
        with open(path, "w") as fh:
            fh.write("[DEFAULT]\nuse_stderr = true\n\n"
                     "[database]\nconnection = %s\n" % url)
        return path

    def manage(self, conf, *argv, check=True):
        cmd = [self.glance_manage, "--config-file", conf, "db"] + list(argv)
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=self.tmp, capture_output=True,
                              text=True, check=False)
        elapsed = time.monotonic() - start
        out = proc.stdout + proc.stderr
        if check and proc.returncode != 0:
            raise RuntimeError("%s failed (exit %d):\n%s"
                               % (" ".join(cmd[3:]), proc.returncode, out))
        return proc.returncode, _interesting(out), elapsed

    def write(self, engine, state, data):
        outdir = os.path.join(self.args.out, engine)
        os.makedirs(outdir, exist_ok=True)
        with open(os.path.join(outdir, state + ".json"), "w") as fh:
            fh.write(schema_dump.to_json(data))

    def log(self, msg):
        print(msg, flush=True)

    # ------------------------------------------------------------ phases
    def walk(self, engine):
        url = self.new_db(engine)
        conf = self.conf_for(url)
        previous = None
        rows_seen = {}
        for state in STATES:
            out, elapsed = self.manage(conf, "upgrade", "--version", state)[1:]
            data = schema_dump.dump(url)
            rows = data["alembic_version"]
            rows_seen[state] = rows
            want = expected_rows(state, previous)
            flag = "" if rows == want else "   <-- facts say %s" % want
            if flag:
                self.problems.append("%s %s: rows %s, facts %s"
                                     % (engine, state, rows, want))
            self.log("  %-10s %-20s %5.1fs rows=%s%s"
                     % (engine, state, elapsed, rows, flag))
            self.write(engine, state, data)
            if "_contract" in state or state.startswith(("liberty", "mitaka")):
                previous = state
        self.notes.setdefault(engine, {})["walk_alembic_version"] = rows_seen

    def fresh_sync(self, engine):
        url = self.new_db(engine)
        conf = self.conf_for(url)
        rc, out, elapsed = self.manage(conf, "sync")
        data = schema_dump.dump(url)
        self.write(engine, "fresh_sync", data)
        self.log("  %-10s %-20s %5.1fs rows=%s"
                 % (engine, "fresh_sync", elapsed, data["alembic_version"]))
        if data["alembic_version"] != [CONTRACT_HEAD]:
            self.problems.append("%s fresh_sync: rows %s"
                                 % (engine, data["alembic_version"]))
        # the head state reached step by step must equal a fresh sync
        walked = os.path.join(self.args.out, engine, CONTRACT_HEAD + ".json")
        if os.path.exists(walked):
            with open(walked) as fh:
                same = json.load(fh) == data
            self.notes.setdefault(engine, {})[
                "fresh_sync_equals_walked_" + CONTRACT_HEAD] = same
            if not same:
                self.problems.append("%s: fresh_sync differs from walked %s"
                                     % (engine, CONTRACT_HEAD))
        self.notes.setdefault(engine, {})["db_sync_output"] = out

    def online_expand(self, engine):
        """mitaka02 then `db expand` (the online rolling-upgrade path)."""
        url = self.new_db(engine)
        conf = self.conf_for(url)
        self.manage(conf, "upgrade", "--version", "mitaka02")
        note = self.notes.setdefault(engine, {})
        rc, out = self.manage(conf, "expand", check=False)[:2]
        note["db_expand_from_mitaka02"] = {"exit": rc, "output": out}
        if engine != "mysql":
            self.log("  %-10s db expand from mitaka02: exit %d: %s"
                     % (engine, rc, " | ".join(out)))
            if engine == "sqlite" and rc == 0:
                note["db_expand_from_mitaka02"]["alembic_version"] = \
                    schema_dump.dump(url)["alembic_version"]
            return
        trust = None
        if rc != 0 and "1419" in "\n".join(out):
            # binary logging on: retry with log_bin_trust_function_creators
            eng = self.admin_engine("mysql")
            with eng.connect() as c:
                old = c.execute(sa.text(
                    "SELECT @@GLOBAL.log_bin_trust_function_creators")).scalar()
                c.execute(sa.text(
                    "SET GLOBAL log_bin_trust_function_creators = 1"))
            try:
                rc, out = self.manage(conf, "expand", check=False)[:2]
            finally:
                with eng.connect() as c:
                    c.execute(sa.text(
                        "SET GLOBAL log_bin_trust_function_creators = %d"
                        % int(old)))
                eng.dispose()
            trust = True
        eng = self.admin_engine("mysql")
        with eng.connect() as c:
            log_bin = c.execute(sa.text("SELECT @@GLOBAL.log_bin")).scalar()
            tfc = c.execute(sa.text(
                "SELECT @@GLOBAL.log_bin_trust_function_creators")).scalar()
        eng.dispose()
        note["db_expand_from_mitaka02"].update({
            "retried_with_log_bin_trust_function_creators": bool(trust),
            "log_bin": int(log_bin), "log_bin_trust_function_creators": int(tfc),
            "exit_after_retry": rc})
        if rc != 0:
            raise RuntimeError("mysql db expand failed:\n" + "\n".join(out))
        data = schema_dump.dump(url)
        self.write(engine, "online_expand_from_mitaka02", data)
        self.log("  %-10s %-20s rows=%s triggers=%s needed_trust=%s"
                 % (engine, "online_expand", data["alembic_version"],
                    sorted(data["triggers"]), bool(trust)))

    def timings(self, engine, runs=3):
        syncs, checks = [], []
        check_exit = []
        for run in range(runs):
            url = self.new_db(engine)
            conf = self.conf_for(url)
            syncs.append(self.manage(conf, "sync")[2])
        # `db check` on the last, up-to-date database
        for run in range(runs):
            rc, out, elapsed = self.manage(conf, "check", check=False)
            checks.append(elapsed)
            check_exit.append(rc)
        self.notes.setdefault(engine, {})["db_check_up_to_date"] = {
            "exit": rc, "output": out}
        result = {
            "db_sync_empty_seconds": {
                "median": round(statistics.median(syncs), 2),
                "runs": [round(x, 2) for x in syncs]},
            "db_check_up_to_date_seconds": {
                "median": round(statistics.median(checks), 2),
                "runs": [round(x, 2) for x in checks],
                "exit_codes": check_exit},
        }
        self.log("  %-10s timings sync median %.2fs, check median %.2fs "
                 "(check exit %s)" % (engine, result["db_sync_empty_seconds"]
                                      ["median"],
                                      result["db_check_up_to_date_seconds"]
                                      ["median"], check_exit))
        # drop the timing databases right away
        for eng_name, name in [x for x in self.created if x[0] == engine]:
            drop_database(self.args, eng_name, name)
        self.created = [x for x in self.created if x[0] != engine]
        return result


def _interesting(out):
    """glance-manage output without timestamps, Eventlet and alembic chatter."""
    lines = []
    in_eventlet = False
    for line in out.splitlines():
        if "EventletDeprecationWarning" in line:
            in_eventlet = True
        if in_eventlet:
            in_eventlet = "import eventlet" not in line
            continue
        if not line.strip():
            continue
        if "alembic.runtime.migration" in line:
            continue
        # "2026-11-25 06:32:20.223 11532 INFO x [-] msg" -> "INFO x msg"
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[0][:2] == "20" and parts[2].isdigit():
            line = parts[3].replace(" [-] ", " ")
        lines.append(line)
    return lines


def drop_database(args, engine, name):
    try:
        if engine == "mysql":
            eng = sa.create_engine(args.mysql_url + "/",
                                   isolation_level="AUTOCOMMIT")
            sql = "DROP DATABASE IF EXISTS `%s`" % name
        else:
            eng = sa.create_engine(args.pg_url + "/postgres",
                                   isolation_level="AUTOCOMMIT")
            sql = 'DROP DATABASE IF EXISTS "%s"' % name
        with eng.connect() as conn:
            conn.execute(sa.text(sql))
        eng.dispose()
    except Exception as exc:  # pragma: no cover - best effort
        sys.stderr.write("could not drop %s database %s: %s\n"
                         % (engine, name, exc))


def cleanup_registry(args):
    """Drop every database listed in the registry file (used by the trap)."""
    if not args.registry or not os.path.exists(args.registry):
        return
    with open(args.registry) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 2 and parts[1].startswith("golden_"):
                drop_database(args, parts[0], parts[1])


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=os.path.join(HERE, "golden"))
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--mysql-url", default=os.environ.get(
        "GOLDEN_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306"))
    p.add_argument("--pg-url", default=os.environ.get(
        "GOLDEN_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432"))
    p.add_argument("--timings", default=os.path.join(HERE, "oracle_timings.json"),
                   help="where to write timings; '' to skip measuring")
    p.add_argument("--notes", default=os.path.join(HERE, "golden", "oracle_notes.json"))
    p.add_argument("--registry", default=os.environ.get("GOLDEN_DB_REGISTRY"),
                   help="file to append created database names to")
    p.add_argument("--cleanup", action="store_true",
                   help="only drop the databases listed in --registry")
    args = p.parse_args()
    if args.cleanup:
        cleanup_registry(args)
        return 0

    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)

    engines = [e for e in args.engines.split(",") if e]
    oracle = Oracle(args)
    started = time.monotonic()
    timings = {}
    try:
        for engine in engines:
            t0 = time.monotonic()
            oracle.log("== %s" % engine)
            oracle.walk(engine)
            oracle.fresh_sync(engine)
            oracle.online_expand(engine)
            walk_time = time.monotonic() - t0
            if args.timings:
                timings[engine] = oracle.timings(engine)
            oracle.notes.setdefault(engine, {})["generation_seconds"] = \
                round(walk_time, 1)
    finally:
        oracle.drop_all()

    versions = {}
    for mod in ("glance", "sqlalchemy", "alembic", "oslo_db", "pymysql",
                "psycopg2"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            try:
                from importlib import metadata
                versions[mod] = metadata.version(mod.replace("_", "."))
            except Exception:
                versions[mod] = None
    try:
        import pymysql
        versions["pymysql"] = pymysql.VERSION_STRING
    except Exception:
        pass
    servers = {}
    for engine in engines:
        if engine == "sqlite":
            import sqlite3
            servers[engine] = sqlite3.sqlite_version
            continue
        eng = oracle.admin_engine(engine)
        with eng.connect() as c:
            servers[engine] = c.execute(sa.text("SELECT version()")).scalar()
        eng.dispose()

    total = round(time.monotonic() - started, 1)
    oracle.notes["_meta"] = {"versions": versions, "servers": servers,
                             "total_seconds": total,
                             "problems": oracle.problems}
    if args.notes and engines == ENGINES:
        os.makedirs(os.path.dirname(args.notes), exist_ok=True)
        with open(args.notes, "w") as fh:
            fh.write(json.dumps(oracle.notes, indent=2, sort_keys=True) + "\n")
    if args.timings and timings and engines == ENGINES:
        timings["_meta"] = {"versions": versions, "servers": servers,
                            "runs": 3, "statistic": "median, wall seconds, "
                            "including glance-manage start-up"}
        with open(args.timings, "w") as fh:
            fh.write(json.dumps(timings, indent=2, sort_keys=True) + "\n")
    oracle.log("done in %.1fs; problems: %s" % (total, oracle.problems or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
