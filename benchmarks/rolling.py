"""Expand, migrate and contract a big pre-Ocata MariaDB database under application load.

    python benchmarks/rolling.py [--images 1000000] [--out DIR] [--skip-glance]
    python benchmarks/rolling.py --smoke --out DIR     # 2,000 images, for CI
    python benchmarks/rolling.py --galera [--images 200000] [--out DIR]
    python benchmarks/rolling.py --galera --smoke --out DIR   # 2,000 images on the test cluster

For each engine under test (ours in-process, then real glance-manage 33.0.0 on a
fresh copy of the same dataset) it builds the dataset at mitaka02 in a scratch
database, starts the canary (release N-1 writers), runs expand, lets release N
writers in, runs migrate, stops the N-1 writers (every node upgraded), runs
contract, and then checks what was lost. It records each phase's duration and the
writers' latency p50/p99/max per phase, the 1213 errors they met (each write that
meets one reruns after 0.5 s, as Glance 33's wrap_db_retry does; --no-retry counts
it failed instead), writes failed after retries, lost rows and values.
Output: a one-line summary, then one JSON object (last line; also DIR/rolling.json)
and DIR/rolling_latency.png (latency over time, phases marked).

--galera runs on the 3-node test cluster (scripts/galera, node N at 127.0.0.1:4305+N):
the dataset is seeded through node 1 (and timed until every node holds it), writers
are spread over the nodes and retry error 1213 as Glance does, both migrators go
through node 1 (ours with the Galera lock and guards), and the figures are also
given per node, with the 1213 errors met, and the statements that ran while writers
stalled (each node's PROCESSLIST, sampled).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import canary as canary_mod  # noqa: E402
import _lib  # noqa: E402
import dataset  # noqa: E402

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases  # noqa: E402
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.deps import sa  # noqa: E402
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import (  # noqa: E402
    GlanceDbError,
)

# The catch-up migrate runs once the N-1 nodes are gone: until then they may share
# a private image (a member on an image migrated as private), which needs migrating again.
PHASES = ("expand", "migrate", "catchup_migrate", "contract")
GOAL = {"p99_ms": 20.0, "max_ms": 100.0}
# What the visibility of every dataset image must be once the Ocata migration ran
# (two statements: Galera replicates CREATE ... SELECT poorly).
EXPECTED_SQL = (
    "CREATE TABLE bench_expected (id VARCHAR(36) PRIMARY KEY, v VARCHAR(10)) CHARACTER SET utf8",
    "INSERT INTO bench_expected SELECT id, CASE WHEN is_public THEN 'public' WHEN EXISTS "
    "(SELECT 1 FROM image_members m WHERE m.image_id = images.id AND NOT m.deleted) "
    "THEN 'shared' ELSE 'private' END FROM images")
GALERA_PORTS = (4306, 4307, 4308)
ROLE_BATCH_SIZE = 1000  # roles/glance_db: glance_db_migrate_batch_size
# 2,000 images, 1,200 of them written: a larger batch loses certification on every try.
GALERA_SMOKE_BATCH_SIZE = 100
STALL_MS = GOAL["max_ms"]  # a write slower than this is a stall worth naming its cause


def log(msg):
    print("rolling: %s" % msg, file=sys.stderr, flush=True)


# ---- the two ways of running a phase
class Ours(object):
    name = "ours"
    migrates = True

    def __init__(self, url, batch_size=None, mysql_datadir=None):
        self.engine = _lib.engine_for(url)
        self.batch_size = batch_size
        self.mysql_datadir = mysql_datadir
        self.statements = []  # (wall start, seconds, statement): DDL and anything slow
        sa.event.listen(self.engine, "before_cursor_execute", self._before)
        sa.event.listen(self.engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = (time.time(), time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        wall, started = conn.info.pop("bench_started", (None, None))
        seconds = time.perf_counter() - started
        short = _short(statement)  # without the Galera lease's comment, which comes first
        if re.match(r"(ALTER|CREATE|DROP|RENAME)\b", short, re.IGNORECASE) or seconds > 0.5:
            self.statements.append((wall, seconds, short))

    def run(self, phase):
        phase = phase.replace("catchup_", "")
        args = {"batch_size": self.batch_size} if phase == "migrate" and self.batch_size else {}
        if self.mysql_datadir:
            args["mysql_datadir"] = self.mysql_datadir
        try:
            outcome = phases.run(self.engine, phase, **args)
        except GlanceDbError as exc:
            return {"ok": False, "error": str(exc)}
        except sa.exc.DBAPIError as exc:  # the module reports these as one message too
            return {"ok": False, "error": str(getattr(exc, "orig", exc))[:300]}
        return {"ok": True, "revisions": outcome.applied_revisions, "migrated": outcome.migrated,
                "warnings": outcome.warnings}

    def close(self):
        self.engine.dispose()


class GlanceManage(object):
    """Real glance-manage in its own virtualenv; known not to migrate pre-Ocata data."""
    name = "glance_manage"
    migrates = False

    def __init__(self, url, glance_manage):
        self.glance_manage = glance_manage
        self.dir = tempfile.mkdtemp(prefix="bench_glance_")
        self.conf = os.path.join(self.dir, "glance-api.conf")
        with open(self.conf, "w") as handle:
            handle.write("[database]\nconnection = %s\n" % url)
        started = time.monotonic()
        self._call("version")
        self.startup_seconds = round(time.monotonic() - started, 2)  # process start, for reading

    def _call(self, *args):
        done = subprocess.run([self.glance_manage, "--config-file", self.conf, "db"] + list(args),
                              capture_output=True, text=True, cwd=self.dir, check=False)
        lines = [l for l in (done.stdout + done.stderr).splitlines()
                 if l.strip() and "eventlet" not in l.lower() and "warn" not in l.lower()]
        return done.returncode, lines

    def run(self, phase):
        code, lines = self._call(phase.replace("catchup_", ""))
        result = {"ok": code == 0, "exit_code": code, "output": lines[-3:]}
        if code:  # the database error, not the traceback's last line
            reasons = [l for l in lines if re.search(r"\(\d{4}, |Error: ", l)]
            result["error"] = (reasons or lines or ["exit %d" % code])[-1][-300:]
        return result

    def close(self):
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


# ---- what ran on the cluster while writers waited
class ProcesslistSampler(object):
    """Every ``period`` seconds, each node's statements on ``database`` other than the
    writers' (marked, and their COMMITs), running for more than 0.1 s: glance-manage's
    statements cannot be hooked, and a replicated DDL shows on every node (as
    'system user' on the others)."""

    QUERY = ("SELECT ID, USER, TIME_MS, STATE, INFO FROM information_schema.PROCESSLIST "
             "WHERE DB = :db AND INFO IS NOT NULL AND INFO NOT LIKE :canary AND INFO <> 'COMMIT' "
             "AND TIME_MS > 100 "
             "AND ID <> CONNECTION_ID()")

    def __init__(self, urls, database, period=0.1):
        self.urls, self.database, self.period = urls, database, period
        self.seen = []  # [node, id, sql, first wall, last wall, longest seconds, user, state]
        self._open = {}  # (node, id, sql) -> its entry while it keeps running
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def _run(self):
        engines = [sa.create_engine(u, poolclass=sa.pool.NullPool) for u in self.urls]
        conns = [e.connect() for e in engines]
        params = {"db": self.database, "canary": canary_mod.CANARY_MARK.strip() + "%"}
        try:
            while not self._stop.wait(self.period):
                for node, conn in enumerate(conns, 1):
                    try:
                        rows = conn.execute(sa.text(self.QUERY), params).all()
                        conn.rollback()
                    except sa.exc.DBAPIError:
                        self.errors += 1
                        continue
                    now = time.time()
                    for ident, user, ms, state, info in rows:
                        seconds = float(ms) / 1000
                        entry = self._open.get((node, ident, info[:300]))
                        if entry is None or seconds < entry[5]:  # first seen, or run again
                            entry = [node, ident, info[:300], now - seconds, now, 0.0, user, state]
                            self._open[(node, ident, info[:300])] = entry
                            self.seen.append(entry)
                        entry[4] = now
                        entry[5] = seconds
        finally:
            for conn, engine in zip(conns, engines):
                conn.close()
                engine.dispose()

    def stop(self):
        """Stop sampling; return the statements seen, as
        {node, start, end, seconds, user, state, sql} (start and end: wall clock)."""
        self._stop.set()
        self._thread.join(timeout=30)
        return [{"node": node, "start": first, "end": last + self.period, "seconds": round(longest, 3),
                 "user": user, "state": state, "sql": _short(sql)}
                for node, _ident, sql, first, last, longest, user, state in sorted(
                    self.seen, key=lambda entry: entry[3])]


def _short(sql):
    """A statement without comments (our lease token), on one line, cut to 100 characters."""
    return " ".join(re.sub(r"/\*.*?\*/", " ", sql).split())[:100]


# ---- one rolling upgrade under load
WRONG_VISIBILITY = ("FROM images i JOIN bench_expected e ON e.id = i.id "
                    "WHERE NOT (i.visibility <=> e.v)")


def _table_facts(url, touched):
    """What the images table looks like afterwards, and how many visibilities of the
    dataset's images were lost (those the canary wrote are judged by its verify)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("images")}
        facts = {
            "images": conn.execute(sa.text("SELECT COUNT(*) FROM images")).scalar(),
            "is_public_column": "is_public" in columns,
            "visibility_column": "visibility" in columns,
            "alembic_version": sorted(conn.execute(sa.text(
                "SELECT version_num FROM alembic_version")).scalars()),
            "triggers": sorted(conn.execute(sa.text(
                "SELECT trigger_name FROM information_schema.triggers "
                "WHERE event_object_schema = DATABASE()")).scalars()),
        }
        if "visibility" in columns:
            facts["null_visibility"] = conn.execute(sa.text(
                "SELECT COUNT(*) FROM images WHERE visibility IS NULL")).scalar()
            wrong = conn.execute(sa.text("SELECT COUNT(*) " + WRONG_VISIBILITY)).scalar()
            ids = sorted(touched)
            for start in range(0, len(ids), 500):
                wrong -= conn.execute(sa.text(
                    "SELECT COUNT(*) %s AND i.id IN :ids" % WRONG_VISIBILITY).bindparams(
                        sa.bindparam("ids", expanding=True)), {"ids": ids[start:start + 500]}).scalar()
            facts["dataset_visibility_lost"] = wrong
    engine.dispose()
    return facts


def _overlaps(op, start, end):
    return op[0] < end and op[0] + op[1] > start


def _figures(ops):
    """Latency of the writes that succeeded (retries included), failures after retries,
    the raw 1213 errors met, and how many writes were slower than each goal (a count
    that, unlike p99, does not shrink when a phase runs longer)."""
    took = [o[1] for o in ops if o[4]]
    return dict(_lib.percentiles(took),
                over_p99_goal=sum(1 for t in took if t * 1000 > GOAL["p99_ms"]),
                over_max_goal=sum(1 for t in took if t * 1000 > GOAL["max_ms"]),
                failed_writes=sum(1 for o in ops if not o[4]),
                deadlocks=sum(o[7] for o in ops),
                writes_with_deadlocks=sum(1 for o in ops if o[7]))


def _stalls(inside, statements):
    """Writes slower than STALL_MS per node, and the statements that ran meanwhile."""
    stalls = {}
    for op in inside:
        if op[1] * 1000 <= STALL_MS:
            continue
        node = stalls.setdefault(str(op[6]), {"writes": 0, "statements": {}})
        node["writes"] += 1
        for sql in sorted({st["sql"] for st in statements if _overlaps(op, st["start"], st["end"])}):
            seen = node["statements"].setdefault(sql, {"writes": 0, "max_ms": 0.0})
            seen["writes"] += 1
            seen["max_ms"] = max(seen["max_ms"], round(op[1] * 1000, 1))
    return stalls


def _statement_stalls(ops, statements, marks):
    """For each statement of the migrator (start, end, sql): the phase it ran in and,
    per node, how long the writes slower than STALL_MS waited while it ran."""
    stalls = []
    for st in statements:
        phase = next((p for p in PHASES if p in marks and marks[p][0] <= st["start"] <= marks[p][1]),
                     "between_phases")
        nodes = {}
        for op in ops:
            if op[1] * 1000 <= STALL_MS or not _overlaps(op, st["start"], st["end"]):
                continue
            overlap = min(op[0] + op[1], st["end"]) - max(op[0], st["start"])
            node = nodes.setdefault(str(op[6]), {"writes": 0, "max_overlap_ms": 0.0, "deadlocks": 0})
            node["writes"] += 1
            node["deadlocks"] += op[7]
            node["max_overlap_ms"] = max(node["max_overlap_ms"], round(overlap * 1000, 1))
        if nodes:
            stalls.append({"phase": phase, "sql": st["sql"], "start": st["start"],
                           "seconds": round(st["end"] - st["start"], 3), "nodes": nodes})
    return stalls


def _latency_by_phase(ops, marks, nodes=1, statements=()):
    """Latency figures per phase (every write that overlapped it, so one queued behind
    a lock taken during the phase counts), and for the time in between; with more than
    one node, per node too, with the writes that stalled and what ran meanwhile."""
    figures = {}
    for phase in PHASES:
        if phase not in marks:
            continue
        inside = [o for o in ops if _overlaps(o, *marks[phase])]
        figures[phase] = _figures(inside)
        slowest = sorted(inside, key=lambda o: -o[1])[:5]  # what to look at when tuning
        figures[phase]["slowest"] = [
            {"at": round(o[0] - marks[phase][0], 3), "ms": round(o[1] * 1000, 1), "op": o[2],
             "release": o[3], "node": o[6], "deadlocks": o[7]} for o in slowest]
        if nodes > 1:
            figures[phase]["nodes"] = {str(n): _figures([o for o in inside if o[6] == n])
                                       for n in range(1, nodes + 1)}
            figures[phase]["stalls"] = _stalls(inside, statements)
    outside = [o for o in ops if not any(_overlaps(o, s, e) for s, e in marks.values())]
    figures["between_phases"] = _figures(outside)
    return figures


def _verify(urls, canary, writes, timeline, failed):
    """canary.verify, through each node for the images of the writers on that node
    (reads wait for the node to apply everything); the sums, and per node."""
    if len(urls) == 1:
        return canary_mod.verify(urls[0], writes, canary.initial, timeline, failed), {}
    total, per_node = {}, {}
    for node, url in enumerate(urls, 1):
        mine = {i: w for i, w in writes.items() if canary.owner.get(i) == node}
        report = canary_mod.verify(url, mine, canary.initial, timeline,
                                   [i for i in failed if canary.owner.get(i) == node], sync_wait=True)
        per_node[str(node)] = {k: v for k, v in report.items() if isinstance(v, int)}
        for key, value in report.items():
            total[key] = total.get(key, 0 if isinstance(value, int) else []) + value
    total["examples"] = total["examples"][:10]
    return total, per_node


def _nodes_agree(urls):
    """CHECKSUM TABLE of images and image_members through every node, once each has
    applied everything: one value per table when the nodes agree."""
    sums = {}
    for url in urls:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
            for table in ("images", "image_members"):
                sums.setdefault(table, set()).add(
                    conn.execute(sa.text("CHECKSUM TABLE %s" % table)).all()[0][1])
        engine.dispose()
    return all(len(values) == 1 for values in sums.values())


def _lost_rows_at(lost_ids, writes, owner, marks):
    """Lost rows by the phase their first write overlapped (else between_phases) and node."""
    where = {}
    for image in lost_ids:
        first = writes[image][0]
        phase = next((p for p in PHASES if p in marks and first[0] < marks[p][1]
                      and first[1] > marks[p][0]), "between_phases")
        key = "%s/node%s" % (phase, owner.get(image, 1))
        where[key] = where.get(key, 0) + 1
    return where


def rolling_cycle(url, runner, load, settle, urls=None, database=None, retries=True):
    """Run expand, migrate, contract under the canary (through ``urls``, one a node:
    writers spread over them), its writers retrying deadlocks as Glance does unless
    ``retries`` is false; return the figures."""
    urls = urls or [url]
    galera = len(urls) > 1
    canary = canary_mod.Canary(url, load["writers"], load["writers"], load["rate"], urls=urls,
                               retries=canary_mod.GLANCE_RETRIES if retries else 0)
    canary.start()
    sampler = ProcesslistSampler(urls, database) if galera else None
    if sampler:
        sampler.start()
    marks, results = {}, {}
    try:
        time.sleep(settle + 1.5)  # writers start (spawned processes), then a baseline

        def phase(name):
            log("%s: %s" % (runner.name, name))
            start = time.time()
            results[name] = runner.run(name)
            marks[name] = (start, time.time())
            results[name]["seconds"] = round(marks[name][1] - start, 2)
            outcome = "ok" if results[name]["ok"] else results[name]["error"]
            log("%s: %s done in %.1f s (%s)" % (runner.name, name, results[name]["seconds"], outcome))

        phase("expand")
        canary.expanded()  # release N nodes come up one by one
        time.sleep(settle)
        phase("migrate")
        time.sleep(settle)
        canary.old_nodes_gone()  # every node runs release N now
        time.sleep(1.0)
        phase("catchup_migrate")
        phase("contract")
        time.sleep(settle)
        ops, writes, failed = canary.stop()
    except BaseException:
        canary.terminate()
        raise
    finally:
        sampled = sampler.stop() if sampler else []
    t0 = canary.stage_times["old_start"]
    table = _table_facts(url, set(writes))
    if galera:
        table["nodes_agree"] = _nodes_agree(urls)
    migrations = [marks[p] for p in PHASES if "migrate" in p and runner.migrates and results[p]["ok"]]
    dropped = marks["contract"] if not table["triggers"] else None
    timeline = canary_mod.Timeline(marks["expand"], dropped, migrations)
    verify, verify_nodes = _verify(urls, canary, writes, timeline, failed)
    hooked = [{"node": 1, "start": w, "end": w + d, "sql": q}
              for w, d, q in getattr(runner, "statements", [])]
    latency = _latency_by_phase(ops, marks, len(urls), hooked + sampled)
    # The migrator's own statements: hooked (ours), else as node 1's process list showed them.
    own = hooked or [st for st in sampled if st["node"] == 1 and st["user"] != "system user"]
    failed_writes = sum(1 for o in ops if not o[4])
    errors = sorted({o[5] for o in ops if not o[4]})[:5]
    lost = verify["lost_rows"]
    lost_values = (verify["lost_values"] + verify["wrong_visibility"] + verify["lost_members"]
                   + table.get("dataset_visibility_lost", 0))
    goal = all(latency[p]["p99_ms"] < GOAL["p99_ms"] and latency[p]["max_ms"] < GOAL["max_ms"]
               for p in PHASES if latency.get(p, {}).get("n"))  # a phase may be too short for a write
    goal = goal and failed_writes == 0 and lost == 0 and lost_values == 0 and \
        all(results[p]["ok"] for p in PHASES)
    result = {
        "phases": {p: dict(results[p], latency=latency.get(p)) for p in PHASES},
        "between_phases_latency": latency["between_phases"],
        "operations": len(ops), "failed_writes": failed_writes, "write_errors": errors,
        "lost_rows": lost, "lost_values": lost_values, "verify": verify, "table": table,
        "goal_met": goal, "t0": t0,
        "series": {"t": [round(o[0] - t0, 3) for o in ops], "ms": [round(o[1] * 1000, 2) for o in ops],
                   "release": [o[3] for o in ops], "ok": [o[4] for o in ops],
                   "marks": {p: [round(s - t0, 3), round(e - t0, 3)] for p, (s, e) in marks.items()}},
    }
    if galera:
        result.update(
            deadlocks=sum(o[7] for o in ops), verify_nodes=verify_nodes,
            lost_rows_at=_lost_rows_at(verify["lost_row_ids"], writes, canary.owner, marks),
            statement_stalls=[dict(st, start=round(st["start"] - t0, 2))
                              for st in _statement_stalls(ops, own, marks)],
            writers={"per_release": load["writers"], "node_of_writer_i": "i mod %d + 1" % len(urls),
                     "deadlock_retries": canary_mod.GLANCE_RETRIES,
                     "retry_interval_s": canary_mod.GLANCE_RETRY_INTERVAL},
            sampled_statements=[dict(st, start=round(st["start"] - t0, 2), end=round(st["end"] - t0, 2))
                                for st in sampled])
    return result


def _node_urls(url, ports):
    """The same database through each node (``url`` goes through the first)."""
    return [url.replace(":%d/" % ports[0], ":%d/" % port) for port in ports]


def _replicated(urls, started):
    """Seconds from ``started`` until every node answers a read that waits for it to
    apply everything committed before (the seed's write sets included)."""
    for url in urls:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
            conn.execute(sa.text("SELECT COUNT(*) FROM images")).scalar()
        engine.dispose()
    return round(time.monotonic() - started, 2)


def _other_nodes_leave():
    """Stop nodes 2 and 3 of the working tree's test cluster (a clean leave: node 1
    stays Primary), so a seed through node 1 is not replicated row by row."""
    import signal
    base = os.path.join(_lib.REPO, ".build", "galera")
    for node in (3, 2):
        with open(os.path.join(base, "node%d" % node, "mariadbd.pid")) as handle:
            pid = int(handle.read().strip())
        os.kill(pid, signal.SIGTERM)
        for _attempt in range(120):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("galera node %d did not stop in 60 s" % node)


def _other_nodes_join():
    """Start nodes 2 and 3 again: they copy node 1's data by state transfer. Returns seconds."""
    started = time.monotonic()
    subprocess.run(["bash", os.path.join(_lib.REPO, "scripts", "galera"), "start"], check=True,
                   stdout=subprocess.DEVNULL)
    return round(time.monotonic() - started, 2)


def run_engine(kind, images, load, settle, batch_size, glance_manage=None, mysql_datadir=None,
               galera_ports=None, seed_alone=False, retries=True):
    with _lib.scratch_databases(["mysql"], "rolling") as (_workdir, (db,)):
        url = db.url
        urls = _node_urls(url, galera_ports) if galera_ports else [url]
        log("%s: building %d images at mitaka02%s" % (kind, images, " through node 1" if galera_ports else ""))
        load_before = os.getloadavg()
        if seed_alone:
            _other_nodes_leave()
        started = time.monotonic()
        built = dataset.build(url, images, "mitaka02", log=None)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            for sql in EXPECTED_SQL:
                conn.exec_driver_sql(sql)
        engine.dispose()
        seed = {"seconds": built["seconds"], "load_average_before": load_before}
        if seed_alone:  # nodes 2 and 3 join and copy it (state transfer)
            seed.update(through="node 1 alone", state_transfer_seconds=_other_nodes_join(),
                        on_every_node_seconds=_replicated(urls, started))
        elif galera_ports:  # the seed's write sets reach the other nodes after its commits
            seed.update(through="node 1, cluster up", on_every_node_seconds=_replicated(urls, started))
        everywhere = ("; on every node after %.0f s" % seed["on_every_node_seconds"]
                      if galera_ports else "")
        log("%s: dataset built in %.0f s%s" % (kind, built["seconds"], everywhere))
        runner = (Ours(url, batch_size, mysql_datadir) if kind == "ours"
                  else GlanceManage(url, glance_manage))
        load_start = os.getloadavg()
        try:
            result = rolling_cycle(url, runner, load, settle, urls, db.name, retries)
        finally:
            runner.close()
        result["load_average"] = {"start": [round(x, 2) for x in load_start],
                                  "end": [round(x, 2) for x in os.getloadavg()]}
        result["dataset_seconds"] = built["seconds"]
        result["dataset_rows"] = built["rows"]
        result["seed"] = seed
        t0 = result.pop("t0")
        if kind != "ours":
            result["process_start_seconds"] = runner.startup_seconds
        else:
            result["statements"] = [{"at": round(w - t0, 2), "seconds": round(d, 3), "sql": q}
                                    for w, d, q in runner.statements]
        return result


def machine(galera=False):
    with open("/proc/meminfo") as handle:
        mem_kb = int(handle.readline().split()[1])
    engine = sa.create_engine(_lib.mysql_server(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT VERSION()")).scalar()
        pool = conn.execute(sa.text("SELECT @@innodb_buffer_pool_size")).scalar()
        flush = conn.execute(sa.text("SELECT @@innodb_flush_log_at_trx_commit")).scalar()
        cluster = None
        if galera:
            cluster = dict(conn.execute(sa.text(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size', "
                "'wsrep_provider_version', 'wsrep_cluster_status', 'wsrep_local_state_comment')")).all())
            cluster["wsrep_OSU_method"] = conn.execute(sa.text("SELECT @@wsrep_OSU_method")).scalar()
    engine.dispose()
    return {"nproc": os.cpu_count(), "ram_gb": round(mem_kb / 1024 / 1024, 1),
            "mariadb": version, "innodb_buffer_pool_mb": int(pool) // (1 << 20),
            "innodb_flush_log_at_trx_commit": int(flush), "galera": cluster,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = [k for k in ("ours", "glance_manage") if k in result["engines"]]
    fig, axes = plt.subplots(len(engines), 1, figsize=(14, 4 * len(engines)), squeeze=False)
    colours = {"expand": "tab:blue", "migrate": "tab:green", "catchup_migrate": "tab:olive",
               "contract": "tab:red"}
    for ax, name in zip(axes[:, 0], engines):
        series = result["engines"][name]["series"]
        for release, marker in (("old", "."), ("new", "x")):
            points = [(t, ms) for t, ms, r, ok
                      in zip(series["t"], series["ms"], series["release"], series["ok"])
                      if r == release and ok]
            if points:
                ax.scatter(*zip(*points), s=6, marker=marker,
                           label="release %s writes" % ("N-1" if release == "old" else "N"))
        failed = [(t, ms) for t, ms, ok in zip(series["t"], series["ms"], series["ok"]) if not ok]
        if failed:
            ax.scatter(*zip(*failed), s=20, c="red", marker="v", label="failed writes")
        for phase, (start, end) in series["marks"].items():
            ax.axvspan(start, max(end, start + 0.05), alpha=0.15, color=colours[phase], label=phase)
        ax.axhline(GOAL["p99_ms"], ls=":", c="grey")
        ax.axhline(GOAL["max_ms"], ls="--", c="grey")
        ax.set_yscale("log")
        ax.set_ylabel("write latency (ms)")
        ax.set_title("%s, %d images" % (name.replace("_", "-"), result["images"]))
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)  # off the data
    axes[-1, 0].set_xlabel("seconds since the writers started")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    small_png(path)


def small_png(path):
    """Rewrite the PNG at ``path`` with a palette of 256 colours: a plot looks the same
    (no channel off by more than 34 of 255, no marker colour lost) at under a third of
    the size, and docs/images ships in the collection."""
    from PIL import Image  # matplotlib's own dependency

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def summary(result):
    parts = []
    for name, data in result["engines"].items():
        phase_text = ", ".join(
            "%s %.1fs p99 %s max %s%s" % (p, d["seconds"], d["latency"]["p99_ms"], d["latency"]["max_ms"],
                                          "" if d["ok"] else " FAILED")
            for p, d in data["phases"].items())
        if "deadlocks" in data:
            phase_text += "; 1213 errors met %d" % data["deadlocks"]
        parts.append("%s: %s; failed writes %d, lost rows %d, lost values %d, goal %s" % (
            name, phase_text, data["failed_writes"], data["lost_rows"], data["lost_values"],
            "met" if data["goal_met"] else "NOT met"))
    return "rolling (%d images): %s" % (result["images"], " | ".join(parts))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--writers", type=int,
                        help="writers per release (default 4; --galera: 3, one of each release per node)")
    parser.add_argument("--rate", type=float, default=20.0, help="operations/s per writer")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of load between phases")
    parser.add_argument("--batch-size", type=int,
                        help="our migrate's batch size (default the module's; --galera: the role's "
                             "%d, --galera --smoke: %d)" % (ROLE_BATCH_SIZE, GALERA_SMOKE_BATCH_SIZE))
    parser.add_argument("--skip-glance", action="store_true", help="run ours only")
    parser.add_argument("--skip-ours", action="store_true", help="run glance-manage only")
    parser.add_argument("--smoke", action="store_true", help="2,000 images, short pauses")
    parser.add_argument("--mariadb", default=_lib.mysql_server(),
                        help="server for the scratch databases, as a URL ending in / "
                             "(default %(default)s)")
    parser.add_argument("--mysql-datadir",
                        help="that server's data directory, on this host: our phases run with "
                             "mysql_datadir (rebuilt tables' files held)")
    parser.add_argument("--galera", action="store_true",
                        help="on the test cluster (bash scripts/galera start): seed and migrate "
                             "through node 1, writers through every node")
    parser.add_argument("--galera-ports", default=",".join(map(str, GALERA_PORTS)),
                        help="the cluster's SQL ports, node 1 first (default %(default)s)")
    parser.add_argument("--seed-alone", action="store_true",
                        help="--galera: seed through node 1 while nodes 2 and 3 are stopped, then "
                             "let them join (state transfer copies the dataset); for 1M images")
    parser.add_argument("--no-retry", action="store_true",
                        help="writers take a deadlock (1213) as a failed write instead of retrying it "
                             "as Glance does (how runs on one server were made before 2026-12-01)")
    parser.add_argument("--out", help="directory for rolling.json and rolling_latency.png")
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.settle = 2000, 1.0
    ports = [int(p) for p in args.galera_ports.split(",")] if args.galera else None
    if args.seed_alone and not ports:
        parser.error("--seed-alone is for --galera")
    if ports:
        if args.mysql_datadir:
            parser.error("--mysql-datadir is for one server, not --galera")
        args.mariadb = "mysql+pymysql://root@127.0.0.1:%d/" % ports[0]
    if args.writers is None:
        args.writers = len(ports) if ports else 4
    if ports and args.batch_size is None:
        args.batch_size = GALERA_SMOKE_BATCH_SIZE if args.smoke else ROLE_BATCH_SIZE
    _lib.use_mysql_server(args.mariadb)
    load = {"writers": args.writers, "rate": args.rate}
    result = {"images": args.images, "smoke": args.smoke, "load": load, "settle_seconds": args.settle,
              "goal": GOAL, "machine": machine(bool(ports)), "ours_mysql_datadir": bool(args.mysql_datadir),
              "galera_ports": ports, "batch_size": args.batch_size,
              "deadlock_retries": 0 if args.no_retry else canary_mod.GLANCE_RETRIES, "engines": {}}
    if not args.skip_ours:
        result["engines"]["ours"] = run_engine("ours", args.images, load, args.settle, args.batch_size,
                                               mysql_datadir=args.mysql_datadir, galera_ports=ports,
                                               seed_alone=args.seed_alone, retries=not args.no_retry)
    if not args.skip_glance:
        result["engines"]["glance_manage"] = run_engine(
            "glance_manage", args.images, load, args.settle, None, _lib.glance_manage(),
            galera_ports=ports, seed_alone=args.seed_alone, retries=not args.no_retry)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        plot(result, os.path.join(args.out, "rolling_latency.png"))
    for data in result["engines"].values():
        data.pop("series")  # the plot has it; keep the JSON line readable
    _lib.finish(result, args.out, "rolling.json", summary(result))


if __name__ == "__main__":
    main()
