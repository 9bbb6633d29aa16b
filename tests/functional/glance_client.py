"""Real Glance 33 as the client of a database under expand, migrate and contract.

Release N: ``GlanceNodes`` runs real Glance 33's database API
(``glance.db.sqlalchemy.api``, in the oracle virtualenv of tests/parity/oracle-venv)
in one process per simulated API node, ``THREADS_PER_NODE`` threads each, every
thread doing the same fixed cycle of calls (``CYCLE``) at ``PACE`` calls a second at
most. Retries are Glance's own: ``image_create``, ``image_update`` and
``image_destroy`` carry ``wrap_db_retry`` (50 x 0.5 s on deadlock); every other call
fails on its first error, as its API request would. The tests keep this load; only
benchmarks/glance_client.py --pace lowers the rate, to show how aborts scale with it.

Release N-1: ``StandIns`` are threads of the calling process writing ``images`` the
pre-Ocata way (is_public, no visibility): benchmarks/canary.py's release N-1 writer,
retrying a deadlock only in the calls pre-Ocata Glance retried (image create, update
and destroy: 50 x 0.5 s); a member added fails on its first error.

Every call of either is recorded (call type, start, end, ok or the error's code and
message, and what it wrote) as one JSON line; ``figures`` gives per phase and call
type the count, failures, p50, p99 and max; ``verify_glance`` and
``StandIns.verify`` check every row against what its writer left; ``StatementLog``
records the migrator's statements so that ``failures`` can name the one that ran
when a call failed.

The node side runs in the oracle virtualenv's Python, as a script:
    python glance_client.py node URL NODE DIRECTORY
It imports only the standard library and Glance; the rest of this file runs in the
test's (or the benchmark's) process.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ORACLE_VENV_SCRIPT = REPO / "tests" / "parity" / "oracle-venv"

# The fixed load of release N.
THREADS_PER_NODE = 2
PACE = 10.0  # calls a second per thread at most (a Glance API thread does about that here)
OWNER = "glance-client"
# One cycle of a thread, in order; image_destroy ends every DESTROY_EVERY-th cycle.
CYCLE = ("image_create", "image_tag_create", "image_member_create", "image_location_add",
         "image_update", "task_create")
DESTROY_EVERY = 3
VISIBILITIES = ("shared", "private", "public", "community")  # of cycle k: k % 4
CALL_TYPES = CYCLE + ("image_destroy",)

# The fixed load of release N-1 (benchmarks/canary.py's writers, as threads).
STANDIN_WRITERS = 2
STANDIN_RATE = 20.0  # operations a second per writer
STANDIN_IMAGES = 200  # existing images each writer may update, share and delete
# canary's operations, in Glance's words
STANDIN_CALLS = {"create": "image_create", "update": "image_update", "share": "image_member_create",
                 "delete": "image_destroy"}
STANDIN_RETRIED = {"create", "update", "delete"}  # pre-Ocata @retry on image create/update/destroy


# ---------------------------------------------------------------- the node (oracle venv)
def _error(exc):
    """The call's error: its type, the database's error code where one caused it, the message."""
    code, seen, cause = None, set(), exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        args = getattr(cause, "args", ())
        if args and isinstance(args[0], int):
            code = args[0]
            break
        cause = (getattr(cause, "inner_exception", None) or getattr(cause, "orig", None)
                 or cause.__cause__ or cause.__context__)
    return {"type": type(exc).__name__, "code": code, "message": " ".join(str(exc).split())[:500]}


class _GlanceRetries(object):
    """The retries Glance's own wrap_db_retry makes, per thread: oslo.db logs each one
    at debug level while the exception it retries is being handled. Observed, not changed."""

    def __init__(self):
        import logging
        self.local = threading.local()
        handler = logging.Handler(logging.DEBUG)
        handler.emit = self._emit
        logger = logging.getLogger("oslo_db.api")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(handler)

    def _emit(self, record):
        if record.getMessage().startswith("Performing DB retry"):
            exc = sys.exc_info()[1]
            self.taken().append(dict(_error(exc) if exc else {}, at=time.time()))

    def taken(self):
        if not hasattr(self.local, "retries"):
            self.local.retries = []
        return self.local.retries


def _thread_loop(api, context, retries, node, thread, out, stop_file, pace=PACE):
    """One API thread: CYCLE over and over, ``pace`` calls a second at most, until the stop
    file appears."""
    ctx = context.RequestContext(is_admin=True, project_id=OWNER, user_id="glance-client")
    me = "%d-%d" % (node, thread)
    live_shared = []  # images this thread made shared and has not destroyed: member targets
    made = {}  # cycle -> image id created (for the destroy)
    # Each thread starts at a random point of its first interval: threads in step would all
    # make the same call at the same moment, and a lighter pace would not spread them.
    next_at = time.monotonic() + random.uniform(0, 1.0 / pace)

    def call(name, fn, wrote):
        nonlocal next_at
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        record = {"node": node, "thread": thread, "call": name, "wrote": wrote, "start": time.time()}
        del retries.taken()[:]
        try:
            result = fn()
            record.update(ok=True, error=None)
        except Exception as exc:  # recorded: a failed call is what the test counts
            result = None
            record.update(ok=False, error=_error(exc))
        record["end"] = time.time()
        record["glance_retries"] = list(retries.taken())
        out.write(json.dumps(record, default=str) + "\n")
        out.flush()
        next_at = max(next_at + 1.0 / pace, time.monotonic())
        return record["ok"], result

    k = 0
    while not os.path.exists(stop_file):
        image = str(uuid.uuid4())
        visibility = VISIBILITIES[k % len(VISIBILITIES)]
        values = {"id": image, "name": "gc-%s-%d" % (me, k), "status": "queued",
                  "visibility": visibility, "disk_format": "raw", "container_format": "bare",
                  "size": 1024 + k, "owner": OWNER, "min_disk": 0, "min_ram": 0, "protected": False}
        properties = {"gc_writer": me, "gc_cycle": str(k)}
        ok, _created = call("image_create", lambda: api.image_create(ctx, dict(values, properties=properties)),
                            {"image": image, "values": values, "properties": properties})
        if not ok:  # its later calls would only fail for want of the image
            k += 1
            continue
        made[k] = image
        if visibility == "shared":
            live_shared.append(image)
        tag = "tag-%d" % k
        call("image_tag_create", lambda: api.image_tag_create(ctx, image, tag), {"image": image, "tag": tag})
        # Glance adds members to shared images only: this cycle's, else the latest one.
        member = {"image_id": live_shared[-1], "member": "tenant-%s-%d" % (me, k),
                  "can_share": k % 2 == 0, "status": "pending"}
        call("image_member_create", lambda: api.image_member_create(ctx, dict(member)),
             {"image": member["image_id"], "member": member["member"], "can_share": member["can_share"],
              "status": member["status"]})
        location = {"url": "file:///var/lib/glance/images/%s" % image, "metadata": {"store": "fast"},
                    "status": "active"}
        call("image_location_add", lambda: api.image_location_add(ctx, image, dict(location)),
             dict(location, image=image))
        update = {"name": "gc-%s-%d-updated" % (me, k), "status": "active", "min_ram": k % 512}
        new_properties = {"gc_updated": str(k)}
        call("image_update", lambda: api.image_update(ctx, image, dict(update, properties=new_properties)),
             {"image": image, "values": update, "properties": new_properties})
        task = {"id": str(uuid.uuid4()), "type": "import", "status": "pending", "owner": OWNER,
                "input": {"image_id": image, "cycle": k}, "result": None, "message": ""}
        call("task_create", lambda: api.task_create(ctx, dict(task)), {"task": dict(task)})
        if k % DESTROY_EVERY == 0 and (k - 1) in made:
            victim = made.pop(k - 1)
            if victim in live_shared:
                live_shared.remove(victim)
            call("image_destroy", lambda: api.image_destroy(ctx, victim), {"image": victim})
        k += 1


def node_main(url, node, directory, pace=PACE):
    """One API node: Glance's configuration for ``url``, then THREADS_PER_NODE threads once
    the go file appears, until the stop file does."""
    directory = Path(directory)
    conf = directory / ("node%d.conf" % node)
    conf.write_text("[database]\nconnection = %s\n" % url)
    from oslo_config import cfg
    from glance.common import config  # noqa: F401  (registers Glance's options)
    from glance import context
    from glance.db.sqlalchemy import api
    cfg.CONF(["--config-file", str(conf)], project="glance")
    api.get_engine().connect().close()  # connected before the go: the load starts at once
    retries = _GlanceRetries()
    (directory / ("node%d.ready" % node)).write_text("ready\n")
    go, stop = directory / "go", directory / "stop"
    while not go.exists():
        if stop.exists():
            return
        time.sleep(0.02)
    threads = []
    for thread in range(THREADS_PER_NODE):
        out = open(directory / ("node%d-thread%d.jsonl" % (node, thread)), "w")
        threads.append((threading.Thread(target=_thread_loop,
                                         args=(api, context, retries, node, thread, out, str(stop), pace)), out))
    for thread, _out in threads:
        thread.start()
    for thread, out in threads:
        thread.join()
        out.close()


# ---------------------------------------------------------------- the harness (test process)
def _bench():
    """benchmarks/canary.py (the N-1 writers and their verify) and _lib (percentiles)."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    import _lib
    import canary
    return canary, _lib


def oracle_python():
    """The oracle virtualenv's Python (made by tests/parity/oracle-venv on first use);
    RuntimeError with the reason when it cannot be made."""
    done = subprocess.run(["bash", str(ORACLE_VENV_SCRIPT)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError("cannot make real Glance's virtualenv (tests/parity/oracle-venv):\n"
                           + done.stderr[-3000:])
    return str(Path(done.stdout.strip().splitlines()[-1]) / "bin" / "python")


def read_calls(directory, pattern="*.jsonl"):
    """Every call recorded under ``directory``, in start order."""
    calls = []
    for path in sorted(Path(directory).glob(pattern)):
        # Whole lines only: a node may be writing the last one.
        calls.extend(json.loads(line) for line in path.read_text().split("\n")[:-1] if line.strip())
    return sorted(calls, key=lambda c: c["start"])


class GlanceNodes(object):
    """Release N API nodes: ``start`` loads Glance in each (it waits), ``go`` lets them
    call, ``stop`` ends them and returns their calls. ``url`` is the database, or a list
    of URLs (a Galera cluster's nodes): API node n then talks to the n-th of them."""

    def __init__(self, url, directory, nodes=2, python=None, pace=PACE):
        self.urls = [url] if isinstance(url, str) else list(url)
        self.pace = pace
        self.nodes = nodes
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.python = python or oracle_python()
        self.procs = []

    def start(self, timeout=180):
        for node in range(1, self.nodes + 1):
            err = open(self.directory / ("node%d.err" % node), "w")
            self.procs.append(subprocess.Popen(
                [self.python, str(Path(__file__).resolve()), "node", self.urls[(node - 1) % len(self.urls)],
                 str(node), str(self.directory), repr(self.pace)],
                stdout=err, stderr=subprocess.STDOUT, cwd=str(self.directory)))
            err.close()
        deadline = time.monotonic() + timeout
        while not all((self.directory / ("node%d.ready" % n)).exists() for n in range(1, self.nodes + 1)):
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.terminate()
                raise RuntimeError("Glance nodes did not start:\n" + self.errors())
            time.sleep(0.05)

    def go(self):
        (self.directory / "go").write_text("go\n")

    def stop(self, timeout=120):
        """Stop every node after its calls in flight; return every call, in start order."""
        (self.directory / "stop").write_text("stop\n")
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        failed = [p.returncode for p in self.procs if p.returncode]
        if failed:
            raise RuntimeError("a Glance node exited %s:\n%s" % (failed, self.errors()))
        return read_calls(self.directory, "node*-thread*.jsonl")

    def terminate(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def errors(self):
        return "\n".join((self.directory / ("node%d.err" % n)).read_text()[-2000:]
                         for n in range(1, self.nodes + 1) if (self.directory / ("node%d.err" % n)).exists())


class StandIns(object):
    """Release N-1 API nodes: STANDIN_WRITERS threads of benchmarks/canary.py's N-1
    writer (is_public), each on its own connection, retrying what pre-Ocata Glance
    retried. ``stop`` returns their calls, recorded like the Glance nodes' ones.
    ``urls``: a Galera cluster's nodes (the first is ``url``); writer n writes
    through the n-th of them."""

    def __init__(self, url, directory, seed=7, urls=None, rate=STANDIN_RATE):
        canary, _lib = _bench()
        self.rate = rate
        self.canary = canary
        self.url = url
        self.urls = list(urls or [url])
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Canary's own sampling of the existing images the writers own (and their state).
        self.sampler = canary.Canary(url, STANDIN_WRITERS, 0, rate, STANDIN_IMAGES, seed)
        self.stage = self.sampler.ctx.Value("i", canary.OLD_ONLY)
        self.ready = self.sampler.ctx.Value("i", 0)
        self.results = queue.Queue()
        self.threads = []
        self.writes, self.failed = {}, set()

        retried = canary.GLANCE_RETRIES

        class Writer(canary.Writer):
            def _choose(self):
                op = super()._choose()
                self.retries = retried if op in STANDIN_RETRIED else 0  # read by canary's loop
                return op

        self.writer_class = Writer
        self.seed = seed

    @property
    def initial(self):
        return self.sampler.initial

    def start(self):
        existing = self.sampler._sample_existing(STANDIN_WRITERS * STANDIN_IMAGES)
        for n in range(STANDIN_WRITERS):
            mine = existing[n * STANDIN_IMAGES:(n + 1) * STANDIN_IMAGES]
            writer = self.writer_class("old", n, self.urls[n % len(self.urls)], [(i, self.initial[i][2]) for i in mine],
                                       self.rate, self.seed * 1000 + n, 0)
            thread = threading.Thread(target=writer.run, args=(self.stage, self.ready, self.results),
                                      daemon=True)
            thread.start()
            self.threads.append(thread)
        deadline = time.monotonic() + 60
        while self.ready.value < STANDIN_WRITERS:
            if time.monotonic() > deadline:
                raise RuntimeError("the N-1 stand-ins did not connect")
            time.sleep(0.01)

    def stop(self):
        """Stop the writers; record their calls in standins.jsonl and return them."""
        self.stage.value = self.canary.STOPPED
        calls = []
        for thread in self.threads:
            thread.join(timeout=120)
        for _thread in self.threads:
            name, log, writes, failed = self.results.get(timeout=10)
            self.writes.update(writes)
            self.failed.update(failed)
            for started, latency, op, ok, error, deadlocks in log:
                calls.append({"node": "n-1", "thread": name, "call": STANDIN_CALLS[op], "start": started,
                              "end": started + latency, "ok": ok, "deadlocks": deadlocks,
                              "error": None if ok else {"type": "DBAPIError", "code": _code(error),
                                                        "message": error}})
        calls.sort(key=lambda c: c["start"])
        with open(self.directory / "standins.jsonl", "w") as out:
            for record in calls:
                out.write(json.dumps(record) + "\n")
        return calls

    def verify(self, marks):
        """canary's verify of every image the writers touched, against the phases' timeline
        (Glance's Ocata triggers from expand to contract, the data migration in migrate)."""
        timeline = self.canary.Timeline(marks["expand"], marks.get("contract"),
                                        [marks["migrate"]] if "migrate" in marks else [])
        return self.canary.verify(self.url, self.writes, self.initial, timeline, self.failed)


def _code(message):
    """The error code at the start of a driver's message: '(1213, ...' -> 1213."""
    try:
        return int(message.split("(", 1)[1].split(",", 1)[0])
    except (AttributeError, IndexError, ValueError):
        return None


class StatementLog(object):
    """The migrator's statements with their wall-clock start and end, from SQLAlchemy's
    cursor events on its engine."""

    def __init__(self, engine):
        import sqlalchemy as sa
        self.statements = []  # [start, end or None, sql, error]
        self._lock = threading.Lock()
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)
        sa.event.listen(engine, "handle_error", self._error)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        entry = [time.time(), None, " ".join(statement.split())[:300], None]
        conn.info.setdefault("glance_client_statements", []).append(entry)
        with self._lock:
            self.statements.append(entry)

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        running = conn.info.get("glance_client_statements")
        if running:
            running.pop()[1] = time.time()

    def _error(self, context):
        running = context.connection.info.get("glance_client_statements") if context.connection else None
        if running:
            entry = running.pop()
            entry[1], entry[3] = time.time(), str(context.original_exception).splitlines()[0][:200]

    def during(self, start, end):
        """The statements that ran at some point between ``start`` and ``end``."""
        return [{"start": s, "end": e, "sql": sql, "error": err} for s, e, sql, err in self.statements
                if s <= end and (e is None or e >= start)]


# ---------------------------------------------------------------- figures
def phase_of(call, marks):
    """The phases a call overlapped (every one: a call queued behind a lock taken in a
    phase counts there), or ['between_phases']."""
    inside = [p for p, (s, e) in marks.items() if call["start"] < e and call["end"] > s]
    return inside or ["between_phases"]


def figures(calls, marks):
    """{phase: {call type: {count, failures, p50_ms, p99_ms, max_ms}}}, plus 'all' per phase."""
    _canary, _lib = _bench()
    grouped = {}
    for call in calls:
        for phase in phase_of(call, marks):
            grouped.setdefault(phase, {}).setdefault(call["call"], []).append(call)
            grouped[phase].setdefault("all", []).append(call)
    out = {}
    for phase, by_type in grouped.items():
        out[phase] = {}
        for name, group in sorted(by_type.items()):
            stats = _lib.percentiles([c["end"] - c["start"] for c in group])
            out[phase][name] = {"count": stats.pop("n"), "failures": sum(1 for c in group if not c["ok"]),
                                "retried": sum(1 for c in group if _retries(c)),
                                "p50_ms": stats["p50_ms"], "p99_ms": stats["p99_ms"], "max_ms": stats["max_ms"]}
    return out


ERROR_WINDOW = 0.05  # seconds before an error in which a statement of ours counts as its cause


def _retries(call):
    """How many times the call was retried on a deadlock (by Glance, or by a stand-in as Glance would)."""
    return len(call.get("glance_retries") or ()) or call.get("deadlocks", 0)


def failures(calls, marks, statements=None, retried=False):
    """Every failed call (``retried``: every call retried on a deadlock, failed or not):
    who, when (phase, seconds from the phase's start), its error or the errors retried,
    and the migrator's statements that ran meanwhile."""
    found = []
    for call in calls:
        if (call["ok"] and not _retries(call)) if retried else call["ok"]:
            continue
        phase = phase_of(call, marks)[0]
        entry = {"call": call["call"], "node": call["node"], "thread": call["thread"], "phase": phase,
                 "at": round(call["start"] - marks[phase][0], 3) if phase in marks else None,
                 "seconds": round(call["end"] - call["start"], 3), "ok": call["ok"], "error": call["error"],
                 "retried": call.get("glance_retries") or call.get("deadlocks", 0)}
        if statements is not None:
            entry["statements"] = statements.during(call["start"], call["end"])
            # Each error as it arrived (a retried one: when Glance logged its retry; the last
            # one: when the call ended), with ours that ran in the ERROR_WINDOW before it.
            errors = [r for r in call.get("glance_retries") or () if isinstance(r, dict)]
            if not call["ok"]:
                errors.append(dict(call["error"], at=call["end"]))
            entry["errors_at"] = [{"at": round(e["at"] - call["start"], 3), "code": e.get("code"),
                                   "statements": [dict(st, ms=[round(1000 * (st["start"] - e["at"]), 1),
                                                               None if st["end"] is None
                                                               else round(1000 * (st["end"] - e["at"]), 1)])
                                                  for st in statements.during(e["at"] - ERROR_WINDOW, e["at"])]}
                                  for e in errors]
        found.append(entry)
    return found


_DDL = ("CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE")


def statement_kind(sql):
    """A statement of ours without its lease comment, values or trigger body: what it did,
    so that the aborts of many runs add up by kind."""
    sql = re.sub(r"/\*.*?\*/", "", sql).strip()
    sql = re.split(r"\s+FOR EACH ROW\b|\s+(?:VALUES|WHERE|SELECT)\b", sql, maxsplit=1)[0]
    if sql.upper().startswith("ALTER TABLE"):
        sql = sql.split(",")[0]  # the clause, not the column list
    return re.sub(r"\b\d+\b", "N", sql)[:120]


def cause(error_statements):
    """The statement of ours that ran when an error arrived: of those in its window, the
    latest-started DDL statement (in Total Order Isolation on Galera: it aborts the
    transactions whose metadata locks it needs), else the latest-started write; or None."""
    ddl = [s for s in error_statements if statement_kind(s["sql"]).upper().startswith(_DDL)]
    writes = [s for s in error_statements
              if statement_kind(s["sql"]).upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))]
    found = ddl or writes
    return statement_kind(max(found, key=lambda s: s["start"])["sql"]) if found else None


def abort_causes(entries):
    """{statement kind (statement_kind) or 'none of ours': errors} over every error of the
    failed or retried calls (failures() with statements), retried errors included."""
    counts = {}
    for entry in entries:
        for error in entry.get("errors_at", ()):
            kind = cause(error["statements"]) or "none of ours"
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def describe(entries):
    """failures() as text: each call, then the statements of ours that ran meanwhile."""
    lines = []
    for entry in entries:
        what = entry["error"] if not entry["ok"] else "ok after retrying %s" % [
            (r.get("code"), r.get("message", "")[:80]) if isinstance(r, dict) else r
            for r in (entry["retried"] if isinstance(entry["retried"], list) else [entry["retried"]])]
        lines.append("%s (node %s, thread %s) in %s at +%ss, %ss: %s" % (
            entry["call"], entry["node"], entry["thread"], entry["phase"], entry["at"], entry["seconds"], what))
        for error in entry.get("errors_at", ()):
            lines.append("  error %s at +%ss; ours in the %d ms before it (ms from the error, start to end):"
                         % (error["code"], error["at"], ERROR_WINDOW * 1000))
            for statement in error["statements"]:
                lines.append("    %7s %7s %s%s" % (statement["ms"][0], statement["ms"][1], statement["sql"][:160],
                                                   " -> %s" % statement["error"] if statement["error"] else ""))
    return "\n".join(lines)


def table(result):
    """The figures as text, one line per phase and call type."""
    lines = ["%-16s %-20s %7s %8s %7s %9s %9s %9s" % ("phase", "call", "count", "failures", "retried",
                                                      "p50 ms", "p99 ms", "max ms")]
    for phase, by_type in result.items():
        for name, f in by_type.items():
            lines.append("%-16s %-20s %7d %8d %7d %9s %9s %9s" % (
                phase, name, f["count"], f["failures"], f["retried"], f["p50_ms"], f["p99_ms"], f["max_ms"]))
    return "\n".join(lines)


# ---------------------------------------------------------------- every row as its writer left it
def expected_state(calls):
    """What the Glance nodes' successful calls leave, per image and task; and the images
    touched by a failed call (uncertain: their rows are not judged)."""
    images, tasks, uncertain = {}, {}, set()
    for call in calls:
        wrote = call["wrote"]
        if not call["ok"]:
            uncertain.add(wrote.get("image") or wrote["task"]["input"]["image_id"])
            continue
        name = call["call"]
        if name == "task_create":
            tasks[wrote["task"]["id"]] = wrote["task"]
            continue
        if name == "image_create":
            images[wrote["image"]] = {"values": dict(wrote["values"]), "properties": dict(wrote["properties"]),
                                      "tags": [], "members": [], "locations": [], "deleted": False}
            continue
        image = images.get(wrote["image"])
        if image is None:  # made by a call that failed
            continue
        if name == "image_tag_create":
            image["tags"].append(wrote["tag"])
        elif name == "image_member_create":
            image["members"].append((wrote["member"], bool(wrote["can_share"]), wrote["status"]))
        elif name == "image_location_add":
            image["locations"].append((wrote["url"], wrote["metadata"], wrote["status"]))
        elif name == "image_update":
            image["values"].update(wrote["values"])
            image["properties"].update(wrote["properties"])
        elif name == "image_destroy":
            image["deleted"] = True
    return images, tasks, uncertain


def verify_glance(url, calls):
    """Compare the database with what the Glance nodes wrote. A live image: its row's
    values, its live properties, tags, members and locations exactly; a destroyed one:
    soft-deleted with every child row (Glance's image_destroy), its locations 'deleted'.
    Returns {checked counts, problems: [text]}."""
    import sqlalchemy as sa
    images, tasks, uncertain = expected_state(calls)
    report = {"images": 0, "destroyed": 0, "tasks": 0, "uncertain_images": len(uncertain), "problems": []}
    problems = report["problems"]
    columns = ("name", "status", "visibility", "disk_format", "container_format", "size", "owner",
               "min_disk", "min_ram", "protected")
    ids = sorted(i for i in images if i not in uncertain)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def rows(conn, sql, chunk):
        return conn.execute(sa.text(sql).bindparams(sa.bindparam("ids", expanding=True)), {"ids": chunk}).all()

    found = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for row in rows(conn, "SELECT id, deleted, %s FROM images WHERE id IN :ids" % ", ".join(columns), chunk):
                found.setdefault(row[0], {})["row"] = row
            for table_name, select in (
                    ("properties", "SELECT image_id, deleted, name, value FROM image_properties"),
                    ("tags", "SELECT image_id, deleted, value FROM image_tags"),
                    ("members", "SELECT image_id, deleted, member, can_share, status FROM image_members"),
                    ("locations", "SELECT image_id, deleted, value, meta_data, status FROM image_locations")):
                for row in rows(conn, select + " WHERE image_id IN :ids", chunk):
                    found.setdefault(row[0], {}).setdefault(table_name, []).append(row[1:])
        task_ids = sorted(tasks)
        task_rows = {}
        for start in range(0, len(task_ids), 500):
            for row in rows(conn, "SELECT t.id, t.type, t.status, t.owner, t.deleted, i.input, i.result, i.message "
                            "FROM tasks t LEFT JOIN task_info i ON i.task_id = t.id WHERE t.id IN :ids",
                            task_ids[start:start + 500]):
                task_rows[row[0]] = row
    engine.dispose()

    for image in ids:
        want, have = images[image], found.get(image, {})
        row = have.get("row")
        if row is None:
            problems.append("image %s: row lost" % image)
            continue
        report["destroyed" if want["deleted"] else "images"] += 1
        if bool(row[1]) != want["deleted"]:
            problems.append("image %s: deleted=%s, its writer left %s" % (image, bool(row[1]), want["deleted"]))
        for column, value in zip(columns, row[2:]):
            expected = want["values"][column]
            if (bool(value) if column == "protected" else value) != expected:
                problems.append("image %s: %s=%r, its writer left %r" % (image, column, value, expected))
        children = {
            "properties": (sorted(want["properties"].items()), [(r[1], r[2]) for r in have.get("properties", [])]),
            "tags": (sorted(want["tags"]), [(r[1],) for r in have.get("tags", [])]),
            "members": (sorted(want["members"]), [(r[1], bool(r[2]), r[3]) for r in have.get("members", [])]),
            "locations": (sorted((u, json.dumps(m, sort_keys=True), s) for u, m, s in want["locations"]),
                          [(r[1], json.dumps(json.loads(r[2]), sort_keys=True), r[3])
                           for r in have.get("locations", [])]),
        }
        for table_name, (expected, rows_found) in children.items():
            if table_name == "tags":
                expected = [(t,) for t in expected]
            deleted_flags = [bool(r[0]) for r in have.get(table_name, [])]
            if want["deleted"]:
                # Soft-deleted with the image; a location's status turns 'deleted'.
                if table_name == "locations":
                    expected = [(u, m, "deleted") for u, m, _s in expected]
                if not all(deleted_flags):
                    problems.append("image %s: destroyed, %s rows still live" % (image, table_name))
            elif not all(not d for d in deleted_flags):
                problems.append("image %s: %s rows deleted that its writer left live" % (image, table_name))
            if sorted(rows_found) != sorted(expected):
                problems.append("image %s: %s %r, its writer left %r" % (image, table_name, sorted(rows_found),
                                                                         sorted(expected)))
    for task_id, want in tasks.items():
        row = task_rows.get(task_id)
        report["tasks"] += 1
        if row is None:
            problems.append("task %s: row lost" % task_id)
            continue
        have = (row[1], row[2], row[3], bool(row[4]), json.loads(row[5]) if row[5] else None,
                json.loads(row[6]) if row[6] else None, row[7])
        expected = (want["type"], want["status"], want["owner"], False, want["input"], want["result"],
                    want["message"])
        if have != expected:
            problems.append("task %s: %r, its writer left %r" % (task_id, have, expected))
    return report


# ---------------------------------------------------------------- the seeded images
def seed_visibilities(url):
    """The visibility Ocata's data migration must give each image of a pre-Ocata
    database (public if is_public, shared if it has a live member, else private)."""
    import sqlalchemy as sa
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, CASE WHEN is_public THEN 'public' WHEN EXISTS (SELECT 1 FROM image_members m "
            "WHERE m.image_id = images.id AND NOT m.deleted) THEN 'shared' ELSE 'private' END "
            "FROM images")).all()
    engine.dispose()
    return dict(rows)


def verify_seed(url, expected, touched):
    """Every seeded image the stand-ins did not write: still there, with its visibility."""
    import sqlalchemy as sa
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        found = dict(conn.execute(sa.text("SELECT id, visibility FROM images")).all())
    engine.dispose()
    report = {"checked": 0, "lost_rows": 0, "wrong_visibility": 0, "examples": []}
    for image, visibility in expected.items():
        if image in touched:
            continue
        report["checked"] += 1
        if image not in found:
            report["lost_rows"] += 1
        elif found[image] != visibility:
            report["wrong_visibility"] += 1
        else:
            continue
        if len(report["examples"]) < 10:
            report["examples"].append([image, found.get(image), visibility])
    return report


# ---------------------------------------------------------------- one rolling upgrade
def wait_applied(url):
    """Return once the node at ``url`` has applied every write committed anywhere in its
    Galera cluster before now (a causal read): the checks then read the last rows."""
    import sqlalchemy as sa
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
        conn.exec_driver_sql("SELECT COUNT(*) FROM images").scalar()
    engine.dispose()


def aborts(failed, retried):
    """Per phase, the statements of ours that ran when each error of a failed or retried
    call arrived (abort_causes), every error counted once."""
    by_phase = {}
    for entry in retried + [f for f in failed if not f["retried"]]:
        by_phase.setdefault(entry["phase"], []).append(entry)
    return {phase: abort_causes(entries) for phase, entries in by_phase.items()}


def rolling_upgrade(url, directory, nodes=2, settle=1.0, log=lambda message: None, node_urls=None,
                    phase_args=None, pace=PACE):
    """Expand with the N-1 stand-ins writing; at its end the Glance nodes start (the
    stand-ins stop: every node upgraded); then migrate and contract, ours, on an engine
    of their own whose statements are logged. Returns the phases' outcomes and marks,
    every call, the figures per release, phase and call type, the failed calls with the
    statements that ran meanwhile, and what the checks of every row found.

    On a Galera cluster, ``node_urls`` are its nodes (``url``, the migrator's, is one of
    them): one Glance node and one stand-in per cluster node, in turn. ``phase_args``:
    {phase: extra arguments of phases.run}."""
    from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import connection, phases
    from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.deps import sa
    from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import GlanceDbError
    directory = Path(directory)
    expected = seed_visibilities(url)
    glance = GlanceNodes(node_urls or url, directory / "glance", nodes, pace=pace)
    glance.start()
    # A lighter pace lightens release N-1's load in proportion.
    standins = StandIns(url, directory / "standins", urls=node_urls, rate=STANDIN_RATE * pace / PACE)
    migrator = connection.create_engine(connection.resolve_url(url))
    statements = StatementLog(migrator)
    marks, outcomes, old_calls, calls = {}, {}, [], []

    def phase(name):
        if outcomes and not all(o["ok"] for o in outcomes.values()):
            return
        log("%s" % name)
        start = time.time()
        try:
            outcome = phases.run(migrator, name, **(phase_args or {}).get(name, {}))
            outcomes[name] = {"ok": True, "revisions": outcome.applied_revisions,
                              "migrated": outcome.migrated, "table_copies": outcome.table_copies}
        except (GlanceDbError, sa.exc.DBAPIError) as exc:
            outcomes[name] = {"ok": False, "error": str(getattr(exc, "orig", exc))[:500]}
        marks[name] = (start, time.time())
        outcomes[name]["seconds"] = round(marks[name][1] - start, 2)
        log("%s done in %.1f s%s" % (name, outcomes[name]["seconds"],
                                     "" if outcomes[name]["ok"] else ": " + outcomes[name]["error"]))

    try:
        standins.start()
        time.sleep(settle)
        phase("expand")
        glance.go()  # release N nodes come up at the end of expand ...
        old_calls = standins.stop()  # ... and the N-1 ones are gone
        time.sleep(settle)
        phase("migrate")
        time.sleep(settle)
        phase("contract")
        time.sleep(settle)
        calls = glance.stop()
    except BaseException:
        glance.terminate()
        standins.stage.value = standins.canary.STOPPED
        raise
    finally:
        migrator.dispose()
    if node_urls:
        wait_applied(url)
    glance_rows = verify_glance(url, calls)
    old_rows = standins.verify(marks)
    seed_rows = verify_seed(url, expected, set(standins.writes))
    failed = failures(old_calls + calls, marks, statements)
    retried = failures(old_calls + calls, marks, statements, retried=True)
    return {
        "phases": outcomes, "marks": marks, "calls": calls, "standin_calls": old_calls,
        "figures": {"N": figures(calls, marks), "N-1": figures(old_calls, marks)},
        "failures": failed, "retried": retried, "aborts": aborts(failed, retried),
        "verify": {"glance": glance_rows, "standins": {k: v for k, v in old_rows.items() if k != "lost_row_ids"},
                   "seed": seed_rows},
        "rows_lost": (sum(1 for p in glance_rows["problems"] if p.endswith("row lost")) + old_rows["lost_rows"]
                      + seed_rows["lost_rows"]),
        "rows_wrong": (sum(1 for p in glance_rows["problems"] if not p.endswith("row lost"))
                       + old_rows["lost_values"] + old_rows["wrong_visibility"] + old_rows["lost_members"]
                       + seed_rows["wrong_visibility"]),
    }


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "node":
        node_main(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
    else:
        sys.exit("usage: python glance_client.py node URL NODE DIRECTORY PACE")
