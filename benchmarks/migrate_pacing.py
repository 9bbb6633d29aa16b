"""Migrate's pacing on the 3-node cluster: candidates side by side under real Glance's load.

    GALERA_PORT_OFFSET=K python benchmarks/migrate_pacing.py [--images 50000] [--rounds 3]
        [--quiet 15] [--candidates 5000,1000,250] [--out DIR]

One scratch database per candidate and round, each IMAGES mitaka02 images
(benchmarks/dataset.py), expanded before any load. Then real Glance 33's database API
(tests/functional/glance_client.py: one API node per cluster node, two threads each,
its fixed call mix and retries) writes to a database of its own at the heads, through
all three nodes, while the candidates' migrates run through node 1 one after the other,
in an order that rotates each round, each after a quiet window of QUIET seconds (and
one more at the end). So every candidate meets the same machine, within minutes.

Every call is recorded; per call type: the p99 in the quiet windows and during each
candidate's migrates (pooled over the rounds, and per run), with each migrate's seconds
and its ``flow_control`` record. Glance's calls write another database than the one
migrated: what the pacing changes is shared by the cluster (every node applies each
batch, commits wait behind it in order, one machine's CPU); benchmarks/glance_client.py
--galera measures the same database.

Candidates: ``ROWS`` rows per batch, or ``ROWS/RATIO``: and a pause after each batch
RATIO times as long as it took (else the product's ONLINE_BATCH_PAUSE_RATIO); each
backs off under flow control. The product's rows on Galera: flow_control.GALERA_BATCH_ROWS;
before, batch_size's default (5000).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _lib  # noqa: E402
import dataset  # noqa: E402

sys.path.insert(0, str(_lib.REPO / "tests" / "functional"))
import glance_client  # noqa: E402

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import flow_control, phases  # noqa: E402


def log(message):
    _lib.log("migrate_pacing: %s" % message)


def galera_ports():
    offset = int(os.environ.get("GALERA_PORT_OFFSET", "0"))
    return [4305 + node + offset for node in (1, 2, 3)]


@contextlib.contextmanager
def candidate(spec):
    """Candidate ``spec`` ("ROWS" or "ROWS/RATIO") in place meanwhile: batches of ROWS rows on
    the cluster, each followed by a pause RATIO times as long as it took."""
    rows, _sep, ratio = spec.partition("/")
    saved = flow_control.GALERA_BATCH_ROWS, flow_control.ONLINE_BATCH_PAUSE_RATIO
    flow_control.GALERA_BATCH_ROWS = int(rows)
    flow_control.ONLINE_BATCH_PAUSE_RATIO = float(ratio) if ratio else saved[1]
    try:
        yield int(rows)
    finally:
        flow_control.GALERA_BATCH_ROWS, flow_control.ONLINE_BATCH_PAUSE_RATIO = saved


class LoadSampler(threading.Thread):
    """The machine's 1-minute load average, every 5 s: how busy it was in each window."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(5.0):
            self.samples.append((time.time(), os.getloadavg()[0]))

    def during(self, start, end):
        values = [v for t, v in self.samples if start <= t <= end + 5.0]
        return round(sum(values) / len(values), 2) if values else None


def per_type(calls):
    """{call type: {count, failed, retried (by Glance, on a deadlock), p50_ms, p99_ms, max_ms}}, plus 'all'."""
    grouped = {"all": calls}
    for call in calls:
        grouped.setdefault(call["call"], []).append(call)
    out = {}
    for name, group in sorted(grouped.items()):
        stats = _lib.percentiles([c["end"] - c["start"] for c in group])
        out[name] = {"count": stats.pop("n"), "failed": sum(1 for c in group if not c["ok"]),
                     "retried": sum(1 for c in group if c.get("glance_retries")), **stats}
    return out


def inside(calls, windows):
    return [c for c in calls if any(c["start"] < end and c["end"] > start for start, end in windows)]


def ratios(figures, quiet):
    return {name: round(f["p99_ms"] / quiet[name]["p99_ms"], 2) for name, f in figures.items()
            if quiet.get(name, {}).get("p99_ms")}


def prepare(urls, images):
    """Each database at mitaka02 with ``images`` images, expanded, applied on every node."""
    for url in urls:
        built = dataset.build(url, images, "mitaka02")
        engine = _lib.engine_for(url)
        started = time.monotonic()
        try:
            phases.run(engine, "expand")
        finally:
            engine.dispose()
        log("%s: built in %.0f s, expanded in %.0f s" % (url.rsplit("/", 1)[1], built["seconds"],
                                                         time.monotonic() - started))
    for port in galera_ports():
        glance_client.wait_applied(urls[-1].replace(":%d/" % galera_ports()[0], ":%d/" % port))


def migrate(url, spec):
    engine = _lib.engine_for(url)
    try:
        with candidate(spec) as rows:
            started = time.time()
            outcome = phases.run(engine, "migrate", batch_size=rows)
            ended = time.time()
    finally:
        engine.dispose()
    return {"candidate": spec, "start": started, "end": ended, "seconds": round(ended - started, 2),
            "migrated": [{k: m.get(k) for k in ("name", "migrated", "flow_control")} for m in outcome.migrated]}


def run(args, workdir):
    ports = galera_ports()
    plan = []  # (round, candidate), the candidates' order rotating each round
    for round_no in range(args.rounds):
        shift = round_no % len(args.candidates)
        plan += [(round_no, spec) for spec in args.candidates[shift:] + args.candidates[:shift]]
    dbs = [_lib.ScratchDatabase("mysql", "mp%d" % i, workdir) for i in range(len(plan) + 1)]
    try:
        for db in dbs:
            db.create()
        glance_db, migrated_dbs = dbs[0], dbs[1:]
        _lib.sync_with_engine(glance_db.url)
        prepare([db.url for db in migrated_dbs], args.images)
        glance = glance_client.GlanceNodes([glance_db.url.replace(":%d/" % ports[0], ":%d/" % p) for p in ports],
                                           workdir / "glance", nodes=len(ports))
        glance.start()
        load = LoadSampler()
        load.start()
        quiet, runs = [], []
        try:
            glance.go()
            for (round_no, spec), db in zip(plan, migrated_dbs):
                start = time.time()
                time.sleep(args.quiet)
                quiet.append((start, time.time()))
                log("round %d: %s" % (round_no + 1, spec))
                runs.append(dict(migrate(db.url, spec), round=round_no + 1))
                log("round %d: %s done in %.1f s" % (round_no + 1, spec, runs[-1]["seconds"]))
            start = time.time()
            time.sleep(args.quiet)
            quiet.append((start, time.time()))
        finally:
            calls = glance.stop()
            load.stop.set()
    finally:
        for db in dbs:
            db.drop()
    quiet_figures = per_type(inside(calls, quiet))
    result = {"quiet": {"windows": len(quiet), "seconds": round(sum(e - s for s, e in quiet), 1),
                        "load_average": [load.during(s, e) for s, e in quiet], "figures": quiet_figures},
              "candidates": {}, "runs": []}
    for spec in args.candidates:
        mine = [r for r in runs if r["candidate"] == spec]
        figures = per_type(inside(calls, [(r["start"], r["end"]) for r in mine]))
        result["candidates"][spec] = {
            "seconds": [r["seconds"] for r in mine], "figures": figures,
            "p99_over_quiet": ratios(figures, quiet_figures)}
    for r in runs:
        figures = per_type(inside(calls, [(r["start"], r["end"])]))
        result["runs"].append({"round": r["round"], "candidate": r["candidate"], "seconds": r["seconds"],
                               "load_average": load.during(r["start"], r["end"]), "migrated": r["migrated"],
                               "p99_ms": {k: f["p99_ms"] for k, f in figures.items()},
                               "p99_over_quiet": ratios(figures, quiet_figures)})
    result["failed_calls"] = sum(1 for c in calls if not c["ok"])
    return result


def summary(result):
    parts = []
    for name, entry in result["candidates"].items():
        worst = max(entry["p99_over_quiet"].values(), default=0)
        parts.append("%s: migrate %s s, worst p99/quiet %.2f" % (
            name, "/".join("%.0f" % s for s in entry["seconds"]), worst))
    return "migrate_pacing (%d images, %d rounds): %s; failed calls %d" % (
        result["images"], result["rounds"], "; ".join(parts), result["failed_calls"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quiet", type=float, default=15.0, help="seconds of load before each migrate")
    parser.add_argument("--candidates", default="5000,1000,250",
                        help="comma-separated ROWS (rows per batch) or ROWS/RATIO (and the pause's ratio)")
    parser.add_argument("--out", help="directory for migrate_pacing.json")
    args = parser.parse_args(argv)
    args.candidates = [c for c in args.candidates.split(",") if c]
    _lib.use_mysql_server("mysql+pymysql://root@127.0.0.1:%d/" % galera_ports()[0])
    started = time.monotonic()
    result = {"benchmark": "migrate_pacing", "images": args.images, "rounds": args.rounds,
              "quiet_seconds": args.quiet, "galera_batch_rows": flow_control.GALERA_BATCH_ROWS,
              "pause_ratio": flow_control.ONLINE_BATCH_PAUSE_RATIO,
              "machine": _lib.machine(), "servers": _lib.server_versions(["mysql"]),
              "load": {"glance_nodes": 3, "threads_per_node": glance_client.THREADS_PER_NODE,
                       "calls_per_second_per_thread_at_most": glance_client.PACE}}
    workdir = _lib.workdir("migrate_pacing")
    try:
        result.update(run(args, workdir))
    finally:
        _lib.remove(workdir)
    result["seconds"] = round(time.monotonic() - started, 1)
    _lib.finish(result, args.out, "migrate_pacing.json", summary(result))


if __name__ == "__main__":
    _lib.run_main("migrate_pacing", main)
