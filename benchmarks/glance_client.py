"""Real Glance 33 as the client of our expand, migrate and contract on one MariaDB.

    python benchmarks/glance_client.py [--images 200000] [--out DIR]
    python benchmarks/glance_client.py --smoke --out DIR    # 2,000 images, for CI
    python benchmarks/glance_client.py --galera [--images 200000] [--out DIR]
    python benchmarks/glance_client.py --galera --images 12000 --pace 1   # a lighter load

Builds a mitaka02 database of IMAGES images (benchmarks/dataset.py), then runs
tests/functional/glance_client.py's rolling upgrade on it: expand while release N-1
stand-ins (benchmarks/canary.py's writer, as threads) write is_public; at its end two
API nodes of real Glance 33's database API start (two threads each, its fixed call
mix, Glance's own retries) and the stand-ins stop; then migrate and contract. Every
call is recorded; afterwards every row is checked against what its writer left.

--galera runs on the 3-node test cluster (bash scripts/galera start; node N at
127.0.0.1:4305+N, plus GALERA_PORT_OFFSET): the database is built and upgraded
through node 1, and one Glance API node and one stand-in write through each node.
The JSON then also counts, per phase, the statement of ours that ran when each
error of a failed or retried call came (``aborts``).

--pace sets each Glance thread's calls a second (default 10, the tests' load): a TOI
statement aborts the transactions open on its tables, so the aborts scale with it.

Output: a one-line summary, then one JSON object (last line; also DIR/glance_client.json):
per release, phase and call type the count, failures, calls retried on a deadlock,
p50, p99 and max; every failed or retried call with the statements of ours that ran
meanwhile; rows lost and rows not as their writer left them. With --out, every call
too (DIR/glance_client_calls.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _lib  # noqa: E402
import dataset  # noqa: E402

sys.path.insert(0, str(_lib.REPO / "tests" / "functional"))
import glance_client  # noqa: E402

NODES = 2
STATEMENTS_KEPT = 30  # per failed or retried call, in the JSON


def log(message):
    _lib.log("glance_client: %s" % message)


def _kept(entries):
    """failures() entries with at most STATEMENTS_KEPT statements each (and their number)."""
    out = []
    for entry in entries:
        statements = entry.get("statements", [])
        out.append(dict(entry, statements=statements[:STATEMENTS_KEPT], statements_total=len(statements)))
    return out


def galera_ports():
    offset = int(os.environ.get("GALERA_PORT_OFFSET", "0"))
    return [4305 + node + offset for node in (1, 2, 3)]


def run(images, settle, out, galera=False, phase_args=None, pace=glance_client.PACE):
    with _lib.scratch_databases(["mysql"], "glance_client") as (workdir, (db,)):
        log("building %d images at mitaka02" % images)
        built = dataset.build(db.url, images, "mitaka02")
        log("dataset built in %.0f s" % built["seconds"])
        node_urls = None
        if galera:  # the same database through each node; the first is db.url's
            ports = galera_ports()
            node_urls = [db.url.replace(":%d/" % ports[0], ":%d/" % port) for port in ports]
            for url in node_urls:  # the seed's write sets applied everywhere before the load
                glance_client.wait_applied(url)
        load_start = os.getloadavg()
        result = glance_client.rolling_upgrade(db.url, workdir, nodes=len(node_urls) if galera else NODES,
                                               settle=settle, log=log, node_urls=node_urls, phase_args=phase_args,
                                               pace=pace)
        load_end = os.getloadavg()
        if out:
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "glance_client_calls.jsonl"), "w") as handle:
                for call in result["standin_calls"] + result["calls"]:
                    handle.write(json.dumps(call, default=str) + "\n")
    t0 = result["marks"]["expand"][0]
    for phase in result["phases"].values():
        copies = phase.pop("table_copies", None) or []
        phase["table_copies"] = [{k: c.get(k) for k in ("table", "rows", "batches", "seconds")} for c in copies]
    return {
        "dataset_seconds": built["seconds"],
        "phases": result["phases"],
        "marks": {p: [round(s - t0, 3), round(e - t0, 3)] for p, (s, e) in result["marks"].items()},
        "figures": result["figures"],
        "calls": {"N": len(result["calls"]), "N-1": len(result["standin_calls"])},
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in load_end]},
        "aborts": result["aborts"],
        "failed_calls": len(result["failures"]),
        "failures": _kept(result["failures"]),
        "retried_calls": _kept(result["retried"]),
        "rows_lost": result["rows_lost"],
        "rows_wrong": result["rows_wrong"],
        "verify": {"glance": dict(result["verify"]["glance"], problems=result["verify"]["glance"]["problems"][:20]),
                   "standins": result["verify"]["standins"], "seed": result["verify"]["seed"]},
    }


def goals(result):
    """Issue 24's goals: no failed call, a retried call at most 600 ms, and migrate's p99 of
    each call type at most twice the quiet window's (the calls between phases)."""
    retried_ms = [round(1000 * c["seconds"]) for c in result["retried_calls"] if c["ok"]]
    figures = result["figures"]["N"]
    quiet, migrate = figures.get("between_phases", {}), figures.get("migrate", {})
    ratios = {name: round(f["p99_ms"] / quiet[name]["p99_ms"], 2) for name, f in migrate.items()
              if name in quiet and quiet[name]["p99_ms"]}
    return {"failed_calls": result["failed_calls"], "retried_max_ms": max(retried_ms, default=0),
            "migrate_p99_over_quiet": ratios,
            "met": (result["failed_calls"] == 0 and max(retried_ms, default=0) <= 600
                    and bool(ratios) and max(ratios.values()) <= 2.0)}


def summary(result):
    phases = ", ".join("%s %.1fs%s" % (p, o["seconds"], "" if o["ok"] else " FAILED")
                       for p, o in result["phases"].items())
    worst = ", ".join("%s p99 %s max %s" % (p, f["all"]["p99_ms"], f["all"]["max_ms"])
                      for p, f in result["figures"]["N"].items() if p in result["phases"])
    return ("glance_client (%d images): %s; Glance calls %d (%s), failed %d, retried %d; "
            "rows lost %d, rows wrong %d; goal %s; issue 24's goals %s" % (
                result["images"], phases, result["calls"]["N"], worst, result["failed_calls"],
                len(result["retried_calls"]), result["rows_lost"], result["rows_wrong"],
                "met" if result["goal_met"] else "NOT met", result["goals"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of load between phases")
    parser.add_argument("--smoke", action="store_true", help="2,000 images, short pauses")
    parser.add_argument("--out", help="directory for glance_client.json and glance_client_calls.jsonl")
    parser.add_argument("--galera", action="store_true",
                        help="on the 3-node test cluster (bash scripts/galera start), one Glance node per node")
    parser.add_argument("--batch-size", type=int, help="migrate's batch size (default the module's)")
    parser.add_argument("--pace", type=float, default=glance_client.PACE,
                        help="calls a second per Glance thread at most (default %(default)s, the tests' load)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.settle = 2000, 1.0
    if args.galera:
        _lib.use_mysql_server("mysql+pymysql://root@127.0.0.1:%d/" % galera_ports()[0])
    phase_args = {"migrate": {"batch_size": args.batch_size}} if args.batch_size else None
    started = time.monotonic()
    result = {"benchmark": "glance_client", "images": args.images, "smoke": args.smoke,
              "settle_seconds": args.settle, "machine": _lib.machine(), "servers": _lib.server_versions(["mysql"]),
              "galera": args.galera, "migrate_batch_size": args.batch_size,
              "load": {"glance_nodes": 3 if args.galera else NODES, "threads_per_node": glance_client.THREADS_PER_NODE,
                       "calls_per_second_per_thread_at_most": args.pace,
                       "cycle": list(glance_client.CYCLE), "image_destroy_every_cycles": glance_client.DESTROY_EVERY,
                       "standin_writers": glance_client.STANDIN_WRITERS,
                       "standin_rate": glance_client.STANDIN_RATE}}
    result.update(run(args.images, args.settle, args.out, args.galera, phase_args, args.pace))
    result["seconds"] = round(time.monotonic() - started, 1)
    result["goal_met"] = (all(o["ok"] for o in result["phases"].values()) and result["failed_calls"] == 0
                          and result["rows_lost"] == 0 and result["rows_wrong"] == 0)
    result["goals"] = goals(result)
    _lib.finish(result, args.out, "glance_client.json", summary(result))


if __name__ == "__main__":
    _lib.run_main("glance_client", main)
