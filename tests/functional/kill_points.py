"""Kill points of the online route on one MariaDB server, and what runs after them.

A kill point is a phase (expand, migrate, contract) run as its module and stopped by
a signal it sends itself at one statement (run_phase.py's KILL). The state it
leaves, "the stopped state", is dumped once (mysqldump, triggers included) and
restored into a fresh database for each check, so the kill runs once per point
and signal however many checks use it, across xdist workers too (a cache in the
session's shared temporary directory, one file lock per state).

Checks (one test id each, in test_kill_points*.py):

* ``glance``: while the stopped state stands, an application write succeeds: real
  Glance 33's DB API (glance_write_server.py in the oracle virtualenv) once expand is
  done, else release N-1's writes (pre-Ocata, is_public) as plain SQL: an image
  with properties, a tag, a member, a location, an update.
* ``sync``, ``expand``, ``migrate``, ``contract``, ``facts``, ``purge``,
  ``metadefs``: that module, run next (plugins/modules/glance_db_*.py's main(),
  through run_phase.py), completes or refuses with one msg naming the next step
  (contract 9, 12; issue 21 point 4); then an application write succeeds.

GLANCE_KILL_POINTS_IMAGES (default 7,000: seven copy batches, so a kill before the sixth
leaves rows to copy) is the images seeded at mitaka02; below 10,000 (online.MIN_ROWS) the
copy threshold is lowered to half of it (GLANCE_TEST_COPY_MIN_ROWS) in every process the
states and checks start, and only there: this process, which other test files share, keeps
the product's. GLANCE_KILL_POINTS_REPORT, when set,
is a file each check appends its outcome to (one JSON line), for the table of
kill points x next modules.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

# Loaded once: the modules run in forked children.
import ansible.module_utils.basic  # noqa: F401  pylint: disable=unused-import
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (  # noqa: F401  pylint: disable=unused-import
    metadefs, module, online, phases, purge, state,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import EXPAND, GRAPH
from conftest import clone_mysql_database
import run_phase
from seed import IMAGE_INSERT, LOCATION_INSERT, MEMBER_INSERT, seed_pre_ocata

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUN_PHASE = str(HERE / "run_phase.py")
ORACLE_VENV_SCRIPT = REPO / "tests" / "parity" / "oracle-venv"
IMAGES = int(os.environ.get("GLANCE_KILL_POINTS_IMAGES", "7000"))
# The environment of the processes that run a phase or module (see the docstring).
COPY_ENV = ({run_phase.MIN_ROWS_ENV: str(IMAGES // 2)}
            if IMAGES < online.MIN_ROWS and not os.environ.get(run_phase.MIN_ROWS_ENV) else {})
MIGRATE_BATCH = int(math.ceil(IMAGES / 3.0))  # three batches of the visibility migration
MYSQL = dict(host="127.0.0.1", port="3306", user="root")
NEW, OLD = "`_glance_new_images`", "`_glance_old_images`"


@dataclass(frozen=True)
class Point(object):
    name: str
    phase: str  # the phase killed
    kill: str  # run_phase's POINT, without the signal
    base: str  # the state it starts from: "mitaka02", "expanded" or "migrated"
    what: str


def _s(when, pattern, n=1):
    return "%s-statement:%s:%d" % (when, pattern, n)


POINTS = [
    # Expand from mitaka02 copies images three times: Ocata's columns (1st copy), Rocky's two
    # indexes (2nd and 3rd, each carrying Glance's Ocata triggers across the swap).
    Point("expand-copy-created", "expand", _s("after", r"^\s*CREATE TABLE %s" % NEW), "mitaka02",
          "the 1st copy table created, empty, no trigger yet"),
    Point("expand-copy-triggers", "expand", _s("after", r"^\s*CREATE TRIGGER `_glance_copy_", 3), "mitaka02",
          "the copy's three triggers on images, no row copied"),
    Point("expand-mid-copy", "expand", _s("before", r"^\s*INSERT INTO %s" % NEW, 6), "mitaka02",
          "five batches of rows copied, the sixth not"),
    Point("expand-fk-dropped", "expand", _s("after", r"DROP FOREIGN KEY", 2), "mitaka02",
          "a child's foreign key dropped, not yet added again towards the copy"),
    Point("expand-fks-repointed", "expand", _s("after", r"ADD CONSTRAINT .* REFERENCES %s" % NEW, 2), "mitaka02",
          "two of the four children's foreign keys point at the copy"),
    Point("expand-before-swap", "expand", _s("before", r"^\s*RENAME TABLE"), "mitaka02",
          "every child points at the complete copy; the swap not run"),
    Point("expand-swapped", "expand", _s("after", r"^\s*RENAME TABLE"), "mitaka02",
          "the 1st swap done; the old copy (with the copy's triggers) left"),
    Point("expand-old-dropped", "expand", _s("after", r"^\s*DROP TABLE %s" % OLD), "mitaka02",
          "the old copy dropped; Ocata's triggers and alembic_version not yet written"),
    Point("expand-carried", "expand", _s("after", r"^\s*CREATE TRIGGER _glance_carry_"), "mitaka02",
          "2nd copy: one stand-in of Glance's Ocata triggers created on the copy"),
    Point("expand-carried-swapped", "expand", _s("after", r"^\s*RENAME TABLE", 2), "mitaka02",
          "2nd copy swapped: stand-ins on images, Glance's Ocata triggers left with the old copy"),
    Point("expand-carried-old-dropped", "expand", _s("after", r"^\s*DROP TABLE %s" % OLD, 2), "mitaka02",
          "2nd copy: old copy dropped, only the stand-ins on images"),
    # Migrate: the data migrations' batches.
    Point("migrate-batch", "migrate", _s("before", r"^\s*UPDATE images SET visibility", 2), "expanded",
          "one batch of the visibility migration committed, the second not"),
    Point("migrate-locations", "migrate", _s("before", r"^\s*UPDATE image_locations"), "expanded",
          "visibility migrated; the location metadata migration not started"),
    # Contract: one copy of images (is_public dropped, visibility NOT NULL).
    Point("contract-mid-copy", "contract", _s("before", r"^\s*INSERT INTO %s" % NEW, 6), "migrated",
          "contract's copy: five batches copied, Ocata's triggers already dropped"),
    Point("contract-swapped", "contract", _s("after", r"^\s*RENAME TABLE"), "migrated",
          "contract's copy swapped; the old copy (with is_public) left"),
]
BY_NAME = dict((p.name, p) for p in POINTS)
# SIGTERM, which a run should answer by stopping at its next safe point and clearing its copy
# (issue 21 point 1): at every point, the run's own end ("stopped": it exits by itself, with
# nothing of ours left) and a Glance write on what it left; every next module on a subset, one
# of each kind of copy step (migrate has no copy to clear).
SIGTERM_POINTS = ["expand-mid-copy", "expand-fks-repointed", "expand-carried-swapped", "contract-mid-copy"]
NEXT = ("glance", "sync", "expand", "migrate", "contract", "facts", "purge", "metadefs")


def cells(points, signal_name, steps=NEXT):
    return [(signal_name, point, step) for point in points for step in steps]


# The cells in three test files, so that scripts/test's two workers (whole files each) share them.
FIRST_COPY = [p.name for p in POINTS if p.phase == "expand" and not p.name.startswith("expand-carried")]
GROUPS = {
    "first_copy": cells(FIRST_COPY, "kill"),
    "carried_migrate_contract": cells([p.name for p in POINTS if p.name not in FIRST_COPY], "kill"),
    "sigterm": cells(SIGTERM_POINTS, "term")
    + cells([p.name for p in POINTS], "term", ("stopped",))
    + cells([p.name for p in POINTS if p.name not in SIGTERM_POINTS], "term", ("glance",)),
}


def cell_id(cell):
    return "%s-%s-%s" % cell


# ---- databases: dump, restore, the shared cache of stopped states

def admin_engine():
    return sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/mysql", isolation_level="AUTOCOMMIT",
                            poolclass=sa.pool.NullPool)


def new_database(prefix="glance_t_kp_"):
    name = prefix + uuid.uuid4().hex[:12]
    engine = admin_engine()
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE %s" % name)
    engine.dispose()
    return name


def drop_database(name):
    engine = admin_engine()
    with engine.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS %s" % name)
    engine.dispose()


def url_of(name):
    return "mysql+pymysql://root@127.0.0.1:3306/%s" % name


def _client_args():
    return ["-h", MYSQL["host"], "-P", MYSQL["port"], "-u", MYSQL["user"]]


def dump(name, path):
    """mysqldump of one database, triggers included, into ``path``."""
    with open(path, "wb") as out:
        done = subprocess.run(["mysqldump"] + _client_args() + [
            "--single-transaction", "--triggers", "--routines", "--skip-comments", name],
            stdout=out, stderr=subprocess.PIPE, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def restore(path, name):
    with open(path, "rb") as dumped:
        done = subprocess.run(["mysql"] + _client_args() + [name], stdin=dumped, stderr=subprocess.PIPE,
                              timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


class States(object):
    """Stopped states (and the bases they start from) as dump files, made once per test
    session, whichever worker asks first; each restored once per worker into a template
    database, which each check's database is cloned from (clone: a fraction of a restore)."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.templates = {}  # dump file -> the template database restored from it, in this process

    def _cached(self, key, make):
        path = self.dir / (key + ".sql")
        with open(self.dir / (key + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                info = make(path.with_suffix(".partial"))
                (self.dir / (key + ".json")).write_text(json.dumps(info))
                os.rename(str(path.with_suffix(".partial")), str(path))
        return path, json.loads((self.dir / (key + ".json")).read_text())

    def database_from(self, path):
        """A new database holding the dump at ``path`` (its name)."""
        if path not in self.templates:
            template = new_database("glance_t_kpt_")
            restore(path, template)
            self.templates[path] = template
        name = "glance_t_kp_" + uuid.uuid4().hex[:12]
        clone_mysql_database(self.templates[path], name)
        return name

    def close(self):
        for template in self.templates.values():
            drop_database(template)
        self.templates = {}

    def base(self, which):
        """mitaka02 with IMAGES pre-Ocata images; then expanded; then migrated."""
        def make(path):
            name = new_database()
            try:
                engine = sa.create_engine(url_of(name), poolclass=sa.pool.NullPool)
                if which == "mitaka02":
                    phases.run(engine, "sync", version="mitaka02")
                    expected = seed_pre_ocata(_Seedable(engine), IMAGES)
                else:
                    earlier, info = self.base({"expanded": "mitaka02", "migrated": "expanded"}[which])
                    expected = info["expected"]
                    restore(earlier, name)
                    run_phase_process(url_of(name), {"expanded": "expand", "migrated": "migrate"}[which])
                engine.dispose()
                dump(name, path)
            finally:
                drop_database(name)
            return {"expected": expected}
        return self._cached("base-" + which, make)

    def stopped(self, point, signal_name):
        """The state a run of ``point``'s phase leaves when it sends itself the signal there."""
        def make(path):
            base, info = self.base(point.base)
            name = new_database()
            try:
                restore(base, name)
                done = kill_run(point, signal_name, url_of(name), self.dir)
                dump(name, path)
                info = dict(info, exit=done.returncode, output=(done.stdout + done.stderr)[-2000:],
                            result=last_json(done.stdout),
                            leftovers=leftovers(url_of(name)))
            finally:
                drop_database(name)
            return info
        return self._cached("stopped-%s-%s" % (point.name, signal_name), make)


def run_phase_process(url, phase):
    """phases.run of ``phase`` on ``url`` to its end, in a process of its own (with COPY_ENV)."""
    done = subprocess.run([sys.executable, RUN_PHASE, url, phase], capture_output=True, text=True, timeout=600,
                          check=False, env=dict(os.environ, **COPY_ENV))
    assert done.returncode == 0 and last_json(done.stdout).get("error", 1) is None, (
        phase, done.returncode, done.stdout[-2000:], done.stderr[-2000:])


def kill_run(point, signal_name, url, directory):
    """Run ``point``'s phase module on ``url`` until it sends itself the signal at the point;
    the finished process (its output: what a handled SIGTERM printed)."""
    mark = Path(directory) / ("%s-%s-%s.fired" % (point.name, signal_name, uuid.uuid4().hex[:6]))
    args = {"connection": url}
    if point.phase == "migrate":
        args["batch_size"] = MIGRATE_BATCH
    done = subprocess.run(
        [sys.executable, RUN_PHASE, "module", point.phase, json.dumps(args), "%s-%s" % (signal_name, point.kill)],
        capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, GLANCE_TEST_KILL_MARK=str(mark), **COPY_ENV))
    assert mark.exists(), "%s never reached its kill point %s (exit %s): %s %s" % (
        point.phase, point.kill, done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    mark.unlink()
    if signal_name == "kill":
        assert done.returncode == -9, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    return done


class _Seedable(object):
    """What seed_pre_ocata needs of a test database: its engine."""

    def __init__(self, engine):
        self.engine = engine


# ---- what the checks look at

def leftovers(url):
    """Our tables and triggers (names starting with _glance_) in the database."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        for attempt in range(3):
            try:
                return sorted(_leftovers(engine))
            except sa.exc.InternalError as exc:  # errno 6: the server lost its own temporary file
                if _code(exc) != 6 or attempt == 2:
                    raise
    finally:
        engine.dispose()


def _leftovers(engine):
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME LIKE '\\\\_glance\\\\_%%' UNION ALL SELECT TRIGGER_NAME FROM "
            "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
            "AND TRIGGER_NAME LIKE '\\\\_glance\\\\_%%'").scalars().all()


def expand_done(url):
    """Whether alembic_version says expand reached its head (Glance 33 may run)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    except sa.exc.DBAPIError:
        return False
    finally:
        engine.dispose()
    try:
        return GRAPH.heads[EXPAND] in GRAPH.applied_from_rows(rows)
    except Exception:  # pylint: disable=broad-except  # unknown or contradictory rows
        return False


def _code(exc):
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def n_minus_1_write(url):
    """Release N-1's writes (pre-Ocata: is_public), each call its own transaction as an
    API request is: an image with properties, a tag, a member, a location, an update."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    image = str(uuid.uuid4())
    calls = [
        ("image_create", [(IMAGE_INSERT, dict(id=image, name="kill-point", is_public=False, deleted=False,
                                              protected=False)),
                          ("INSERT INTO image_properties (image_id, name, value, created_at, deleted) "
                           "VALUES (:i, 'kp_a', '1', CURRENT_TIMESTAMP, 0)", dict(i=image))]),
        ("image_tag_create", [("INSERT INTO image_tags (image_id, value, created_at, deleted) "
                               "VALUES (:i, 'kp-tag', CURRENT_TIMESTAMP, 0)", dict(i=image))]),
        ("image_member_create", [(MEMBER_INSERT, dict(image_id=image, member="kp-member", f=False,
                                                      deleted=False))]),
        ("image_location_add", [(LOCATION_INSERT, dict(image_id=image, value="file:///kp/%s" % image, f=False,
                                                       meta=json.dumps({"store": "fast"})))]),
        ("image_update", [("UPDATE images SET name = 'kill-point-renamed', is_public = 1 WHERE id = :i",
                           dict(i=image))]),
    ]
    try:
        with engine.connect() as conn:
            for call, statements in calls:
                for attempt in range(GLANCE_RETRIES + 1):
                    try:
                        with conn.begin():
                            for sql, params in statements:
                                conn.execute(sa.text(sql), params)
                        break
                    except sa.exc.DBAPIError as exc:
                        # Glance retries a deadlock in these calls only (wrap_db_retry, 50 x 0.5 s)
                        if call in GLANCE_RETRIED and _code(exc) == 1213 and attempt < GLANCE_RETRIES:
                            time.sleep(0.5)
                            continue
                        return {"ok": False, "call": call, "code": _code(exc),
                                "error": str(getattr(exc, "orig", exc))[:400], "image_id": image}
    finally:
        engine.dispose()
    return {"ok": True, "image_id": image}


GLANCE_RETRIED = ("image_create", "image_update", "image_destroy")
GLANCE_RETRIES = 50


def written_rows(url, image):
    """(images, properties, tags, members, locations) rows of the written image."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return tuple(conn.exec_driver_sql("SELECT COUNT(*) FROM %s WHERE %s = %%s" % (table, column),
                                              (image,)).scalar()
                         for table, column in (("images", "id"), ("image_properties", "image_id"),
                                               ("image_tags", "image_id"), ("image_members", "image_id"),
                                               ("image_locations", "image_id")))
    finally:
        engine.dispose()


class GlanceClient(object):
    """glance_write_server.py serving in the oracle virtualenv: one Glance 33 write per URL."""

    def __init__(self):
        venv = subprocess.run(["bash", str(ORACLE_VENV_SCRIPT)], capture_output=True, text=True, check=False)
        assert venv.returncode == 0, "cannot make real Glance's virtualenv:\n" + venv.stderr[-3000:]
        self.venv = Path(venv.stdout.strip().splitlines()[-1])
        self.proc = subprocess.Popen([str(self.venv / "bin" / "python"), str(HERE / "glance_write_server.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        ready = self.proc.stdout.readline()
        assert json.loads(ready or "{}").get("ready"), "glance_write_server.py did not start: %r" % ready

    @property
    def metadefs(self):
        return str(self.venv / "etc" / "glance" / "metadefs")

    def write(self, url):
        self.proc.stdin.write(url + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "glance_write_server.py died"
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def application_write(client, url):
    """The application's write on the database as it stands: Glance 33 once expand is done,
    else release N-1. Returns (who, result); a failure's result names the call and code."""
    if expand_done(url):
        who, result = "glance33", client.write(url)
    else:
        who, result = "n-1", n_minus_1_write(url)
    if result["ok"]:
        rows = written_rows(url, result["image_id"])
        if rows != (1, 2 if who == "glance33" else 1, 1, 1, 1):
            result = dict(result, ok=False, call="read back", code=None, error="rows written: %s" % (rows,))
    return who, result


def describe_write(who, result):
    return "%s write fails%s at %s: %s" % (
        who, " %s" % result["code"] if result.get("code") else "", result.get("call"), result.get("error"))


def run_module(name, url, **args):
    """glance_db_NAME run next, as Ansible runs it (run_phase.run_module_forked, with COPY_ENV):
    its JSON result, or what it printed."""
    status, printed = run_phase.run_module_forked(name, json.dumps(dict(args, connection=url)), COPY_ENV)
    result = last_json(printed)
    if result:
        return result
    return {"failed": True, "msg": "no JSON result (wait status %s): %s" % (status, printed[-2500:]),
            "unparsed": True}


UP_TO_DATE = re.compile(r"up to date|No migrations needed|synced successfully", re.IGNORECASE)
NAMES_A_MODULE = re.compile(r"glance_db_(sync|expand|migrate|contract)")


def record(cell, outcome, detail=""):
    report = os.environ.get("GLANCE_KILL_POINTS_REPORT")
    if report:
        with open(report, "a") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            out.write(json.dumps({"signal": cell[0], "point": cell[1], "next": cell[2], "outcome": outcome,
                                  "detail": detail[:600]}) + "\n")


# ---- one check: the application's write, or a module run next

PHASES = ("sync", "expand", "migrate", "contract")
# Where the module run next may refuse, by the killed phase, naming the module to run (contract
# must; migrate may also migrate the data of the revisions a stopped expand applied).
REFUSES = {"migrate": {"expand": "glance_db_expand"},
           "contract": {"expand": "glance_db_expand", "migrate": "glance_db_migrate"}}


def _schema_and_rows(step, point, url, info):
    """After a phase run next completed: the schema real Glance has there, and no row lost."""
    from parity import HEAD, differences  # here: parity imports pytest's skip
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    problems = []
    try:
        golden = None
        if step in ("sync", "contract") and (step == "sync" or point.phase == "contract"):
            golden = HEAD
        elif step == "expand" and point.phase == "expand":
            golden = "online_expand_from_mitaka02"
        if golden:
            diff = differences(engine, "mysql", golden)
            if diff:
                problems.append("completes, but the schema differs from Glance's %s: %s" % (
                    golden, " | ".join(line for line in diff.splitlines() if line[:1] in "+-"
                                       and line[:3] not in ("+++", "---"))[:400]))
        if golden == HEAD:
            with engine.connect() as conn:
                found = dict(conn.exec_driver_sql("SELECT id, visibility FROM images").fetchall())
            if found != info["expected"]:
                lost = sorted(set(info["expected"]) - set(found))
                wrong = sorted(i for i in info["expected"] if i in found and found[i] != info["expected"][i])
                problems.append("completes, but %d images lost and %d with a wrong visibility (e.g. %s)" % (
                    len(lost), len(wrong), (lost + wrong)[:2]))
    finally:
        engine.dispose()
    return problems


STOPPED_ON_SIGTERM = "The run stopped on SIGTERM"


def last_json(printed):
    """The last line of ``printed`` that is a JSON object (a module's result), or {}."""
    for line in reversed(printed.strip().splitlines()):
        try:
            result = json.loads(line)
        except ValueError:
            continue
        if isinstance(result, dict):
            return result
    return {}


def stopped_problems(info):
    """Issue 21 point 1: a run sent SIGTERM stops at its next safe point (a copy batch, a
    data migration batch, a revision) and clears its copy, as on Ctrl-C. It exits by itself
    (not ended by the signal), with one msg that says it stopped, or with the phase done where
    no safe point came after the signal; nothing of ours is left in either case."""
    problems = []
    if info["exit"] < 0:
        problems.append("ended by signal %d instead of stopping at a safe point" % -info["exit"])
    result = info["result"]
    msg = " ".join(str(result.get("msg") or "").split())
    if result.get("failed") and STOPPED_ON_SIGTERM not in msg:
        problems.append("fails without saying it stopped on SIGTERM: %s" % (msg or info["output"][-300:]))
    elif not result:
        problems.append("prints no result: %s" % info["output"][-300:])
    if info["leftovers"]:
        problems.append("leaves %s" % info["leftovers"])
    return problems


def check(step, point, url, info, client):
    """The problems (none: the cell passes) of ``step`` on the stopped state at ``url``."""
    before = leftovers(url)
    if step == "glance":
        who, result = application_write(client, url)
        return [] if result["ok"] else [describe_write(who, result)]
    args = {"path": client.metadefs} if step == "metadefs" else {}
    result = run_module(step, url, **args)
    msg = " ".join(str(result.get("msg") or "").split())
    failed = bool(result.get("failed"))
    after = leftovers(url)
    problems = []
    if result.get("unparsed") or result.get("exception") or "Traceback" in msg:
        problems.append("crashes: %s" % msg[:400])
    elif step in PHASES:
        refusal = REFUSES.get(step, {}).get(point.phase)
        if failed and not refusal:
            problems.append("fails: %s" % msg[:400])
        elif failed and refusal not in msg:
            problems.append("refuses without naming %s: %s" % (refusal, msg[:300]))
        elif not failed and refusal and step == "contract":
            problems.append("completes where it should refuse naming %s: %s" % (refusal, msg[:300]))
        if after:
            if not failed and UP_TO_DATE.search(msg):
                problems.append("says %r with leftovers %s" % (msg[:80], after))
            else:
                problems.append("%s, leaving %s" % ("refuses" if failed else "completes", after))
        elif before and not failed and not result.get("changed"):
            problems.append("clears %s but reports changed=false" % before)
        if not failed and not after and not problems:
            problems += _schema_and_rows(step, point, url, info)
    elif step == "facts":
        facts = result.get("glance_db") or {}
        if failed:
            problems.append("fails: %s" % msg[:400])
        elif before:
            if facts.get("up_to_date") or facts.get("next_step") in (None, "none"):
                problems.append("says next_step %r, up_to_date %r with leftovers %s" % (
                    facts.get("next_step"), facts.get("up_to_date"), before))
            missing = [name for name in before if name not in json.dumps(facts)]
            if missing:
                problems.append("does not report %s" % missing)
    else:  # purge, metadefs
        if before and not failed:
            problems.append("runs while %s stand%s" % (before, " (changed)" if result.get("changed") else ""))
        elif before and not NAMES_A_MODULE.search(msg):
            problems.append("refuses without naming the module that clears %s: %s" % (before, msg[:300]))
        elif failed and not before:
            problems.append("fails: %s" % msg[:400])
    # Whatever it did, the application still writes.
    who, written = application_write(client, url)
    if not written["ok"]:
        problems.append("then " + describe_write(who, written))
    return problems


# ---- the test files' fixtures and their one test

@pytest.fixture(scope="module")
def kill_point_states(tmp_path_factory):
    """The stopped states, shared by the xdist workers of one session (dumps in the session's
    shared temporary directory)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    states = States(root / "kill-points")
    yield states
    states.close()


@pytest.fixture(scope="module")
def glance_writer():
    client = GlanceClient()
    yield client
    client.close()


def run_cell(cell, states, client):
    """One cell of the table: SIGNAL, kill point, what runs next."""
    signal_name, point_name, step = cell
    point = BY_NAME[point_name]
    path, info = states.stopped(point, signal_name)
    if step == "stopped":
        problems = stopped_problems(info)
    else:
        name = states.database_from(path)
        try:
            problems = check(step, point, url_of(name), info, client)
        finally:
            drop_database(name)
    said = " ".join(str(info.get("result", {}).get("msg") or "").split()) if step == "stopped" else ""
    record(cell, "pass" if not problems else "; ".join(problems), said)
    assert not problems, "%s (%s; the stopped run left %s): %s" % (
        cell_id(cell), point.what, info["leftovers"], "; ".join(problems))
