"""Expand, migrate and contract a big pre-Ocata MariaDB database under application load.

    python benchmarks/rolling.py [--images 1000000] [--out DIR] [--skip-glance]
    python benchmarks/rolling.py --smoke --out DIR     # 2,000 images, for CI

For each engine under test (ours in-process, then real glance-manage 33.0.0 on a
fresh copy of the same dataset) it builds the dataset at mitaka02 in a scratch
database, starts the canary (release N-1 writers), runs expand, lets release N
writers in, runs migrate, stops the N-1 writers (every node upgraded), runs
contract, and then checks what was lost. It records each phase's duration and the
writers' latency p50/p99/max per phase, failed writes, lost rows and values.
Output: a one-line summary, then one JSON object (last line; also DIR/rolling.json)
and DIR/rolling_latency.png (latency over time, phases marked).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
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
# What the visibility of every dataset image must be once the Ocata migration ran.
EXPECTED_SQL = (
    "CREATE TABLE bench_expected (id VARCHAR(36) PRIMARY KEY, v VARCHAR(10)) CHARACTER SET utf8 "
    "SELECT id, CASE WHEN is_public THEN 'public' WHEN EXISTS (SELECT 1 FROM image_members m "
    "WHERE m.image_id = images.id AND NOT m.deleted) THEN 'shared' ELSE 'private' END AS v "
    "FROM images")


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
        ddl = re.match(r"\s*(ALTER|CREATE|DROP)\b", statement, re.IGNORECASE)
        if ddl or seconds > 0.5:
            self.statements.append((wall, seconds, " ".join(statement.split())[:100]))

    def run(self, phase):
        phase = phase.replace("catchup_", "")
        args = {"batch_size": self.batch_size} if phase == "migrate" and self.batch_size else {}
        if self.mysql_datadir:
            args["mysql_datadir"] = self.mysql_datadir
        try:
            outcome = phases.run(self.engine, phase, **args)
        except GlanceDbError as exc:
            return {"ok": False, "error": str(exc)}
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


def _latency_by_phase(ops, marks):
    """Latency figures per phase (every write that overlapped it, so one queued behind
    a lock taken during the phase counts), and for the time in between."""
    figures = {}
    for phase in PHASES:
        if phase not in marks:
            continue
        inside = [o for o in ops if _overlaps(o, *marks[phase])]
        figures[phase] = dict(_lib.percentiles([o[1] for o in inside if o[4]]),
                              failed_writes=sum(1 for o in inside if not o[4]))
        slowest = sorted(inside, key=lambda o: -o[1])[:5]  # what to look at when tuning
        figures[phase]["slowest"] = [
            {"at": round(o[0] - marks[phase][0], 3), "ms": round(o[1] * 1000, 1), "op": o[2],
             "release": o[3]} for o in slowest]
    outside = [o for o in ops if not any(_overlaps(o, s, e) for s, e in marks.values())]
    figures["between_phases"] = dict(_lib.percentiles([o[1] for o in outside if o[4]]),
                                     failed_writes=sum(1 for o in outside if not o[4]))
    return figures


def rolling_cycle(url, runner, load, settle):
    """Run expand, migrate, contract under the canary; return the figures."""
    canary = canary_mod.Canary(url, load["writers"], load["writers"], load["rate"])
    canary.start()
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
    t0 = canary.stage_times["old_start"]
    table = _table_facts(url, set(writes))
    migrations = [marks[p] for p in PHASES if "migrate" in p and runner.migrates and results[p]["ok"]]
    dropped = marks["contract"] if not table["triggers"] else None
    timeline = canary_mod.Timeline(marks["expand"], dropped, migrations)
    verify = canary_mod.verify(url, writes, canary.initial, timeline, failed)
    latency = _latency_by_phase(ops, marks)
    failed_writes = sum(1 for o in ops if not o[4])
    errors = sorted({o[5] for o in ops if not o[4]})[:5]
    lost = verify["lost_rows"]
    lost_values = (verify["lost_values"] + verify["wrong_visibility"] + verify["lost_members"]
                   + table.get("dataset_visibility_lost", 0))
    goal = all(latency[p]["p99_ms"] < GOAL["p99_ms"] and latency[p]["max_ms"] < GOAL["max_ms"]
               for p in PHASES if latency.get(p, {}).get("n"))  # a phase may be too short for a write
    goal = goal and failed_writes == 0 and lost == 0 and lost_values == 0 and \
        all(results[p]["ok"] for p in PHASES)
    return {
        "phases": {p: dict(results[p], latency=latency.get(p)) for p in PHASES},
        "between_phases_latency": latency["between_phases"],
        "operations": len(ops), "failed_writes": failed_writes, "write_errors": errors,
        "lost_rows": lost, "lost_values": lost_values, "verify": verify, "table": table,
        "goal_met": goal, "t0": t0,
        "series": {"t": [round(o[0] - t0, 3) for o in ops], "ms": [round(o[1] * 1000, 2) for o in ops],
                   "release": [o[3] for o in ops], "ok": [o[4] for o in ops],
                   "marks": {p: [round(s - t0, 3), round(e - t0, 3)] for p, (s, e) in marks.items()}},
    }


def run_engine(kind, images, load, settle, batch_size, glance_manage=None, mysql_datadir=None):
    with _lib.scratch_databases(["mysql"], "rolling") as (_workdir, (db,)):
        url = db.url
        log("%s: building %d images at mitaka02" % (kind, images))
        built = dataset.build(url, images, "mitaka02", log=None)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(EXPECTED_SQL)
        engine.dispose()
        log("%s: dataset built in %.0f s" % (kind, built["seconds"]))
        runner = (Ours(url, batch_size, mysql_datadir) if kind == "ours"
                  else GlanceManage(url, glance_manage))
        try:
            result = rolling_cycle(url, runner, load, settle)
        finally:
            runner.close()
        result["dataset_seconds"] = built["seconds"]
        result["dataset_rows"] = built["rows"]
        t0 = result.pop("t0")
        if kind != "ours":
            result["process_start_seconds"] = runner.startup_seconds
        else:
            result["statements"] = [{"at": round(w - t0, 2), "seconds": round(d, 3), "sql": q}
                                    for w, d, q in runner.statements]
        return result


def machine():
    with open("/proc/meminfo") as handle:
        mem_kb = int(handle.readline().split()[1])
    engine = sa.create_engine(_lib.mysql_server(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT VERSION()")).scalar()
        pool = conn.execute(sa.text("SELECT @@innodb_buffer_pool_size")).scalar()
        flush = conn.execute(sa.text("SELECT @@innodb_flush_log_at_trx_commit")).scalar()
    engine.dispose()
    return {"nproc": os.cpu_count(), "ram_gb": round(mem_kb / 1024 / 1024, 1),
            "mariadb": version, "innodb_buffer_pool_mb": int(pool) // (1 << 20),
            "innodb_flush_log_at_trx_commit": int(flush)}


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


def summary(result):
    parts = []
    for name, data in result["engines"].items():
        phase_text = ", ".join(
            "%s %.1fs p99 %s max %s%s" % (p, d["seconds"], d["latency"]["p99_ms"], d["latency"]["max_ms"],
                                          "" if d["ok"] else " FAILED")
            for p, d in data["phases"].items())
        parts.append("%s: %s; failed writes %d, lost rows %d, lost values %d, goal %s" % (
            name, phase_text, data["failed_writes"], data["lost_rows"], data["lost_values"],
            "met" if data["goal_met"] else "NOT met"))
    return "rolling (%d images): %s" % (result["images"], " | ".join(parts))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--writers", type=int, default=4, help="writers per release")
    parser.add_argument("--rate", type=float, default=20.0, help="operations/s per writer")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of load between phases")
    parser.add_argument("--batch-size", type=int, help="our migrate's batch size")
    parser.add_argument("--skip-glance", action="store_true", help="run ours only")
    parser.add_argument("--skip-ours", action="store_true", help="run glance-manage only")
    parser.add_argument("--smoke", action="store_true", help="2,000 images, short pauses")
    parser.add_argument("--mariadb", default=_lib.mysql_server(),
                        help="server for the scratch databases, as a URL ending in / "
                             "(default %(default)s)")
    parser.add_argument("--mysql-datadir",
                        help="that server's data directory, on this host: our phases run with "
                             "mysql_datadir (rebuilt tables' files held)")
    parser.add_argument("--out", help="directory for rolling.json and rolling_latency.png")
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.settle = 2000, 1.0
    _lib.use_mysql_server(args.mariadb)
    load = {"writers": args.writers, "rate": args.rate}
    result = {"images": args.images, "smoke": args.smoke, "load": load, "settle_seconds": args.settle,
              "goal": GOAL, "machine": machine(), "ours_mysql_datadir": bool(args.mysql_datadir),
              "engines": {}}
    if not args.skip_ours:
        result["engines"]["ours"] = run_engine("ours", args.images, load, args.settle, args.batch_size,
                                               mysql_datadir=args.mysql_datadir)
    if not args.skip_glance:
        result["engines"]["glance_manage"] = run_engine(
            "glance_manage", args.images, load, args.settle, None, _lib.glance_manage())
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        plot(result, os.path.join(args.out, "rolling_latency.png"))
    for data in result["engines"].values():
        data.pop("series")  # the plot has it; keep the JSON line readable
    _lib.finish(result, args.out, "rolling.json", summary(result))


if __name__ == "__main__":
    main()
