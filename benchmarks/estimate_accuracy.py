"""How close check mode's duration estimates come: each shadow copy's and data migration's
estimate, sampled on the server and at the fixed rates (plugins/module_utils/glance_db/estimates.py),
against the seconds the step then took.

A mitaka02 MariaDB database of N images (progress_eta.seed: both data migrations have rows)
goes through expand, migrate and contract. Before each phase, check mode gives the sampled
estimates; the fixed ones are the same rows at the fixed rates; then the phase runs and its
result gives each step's real seconds. ROUNDS fresh databases, one after the other. With
--full-rows every image row is filled as Glance fills it (formats, checksum, owner, sizes, a
longer name): rows about twice as wide, which a rate fixed in advance does not know. Before
contract the tables' statistics are refreshed (ANALYZE TABLE): just after expand's swaps
InnoDB's row estimate of images is stale, and in a real upgrade contract comes much later. And
before each check mode the server settles: InnoDB's purge of the previous phase's (or the seed's)
undo log, up to SETTLE_SECONDS, which would otherwise run during the short sample only, as an
operator's check mode ahead of an upgrade does not meet it.

    .venv/bin/python benchmarks/estimate_accuracy.py [--smoke] [--images N] [--rounds R] [--full-rows] [--out DIR]

Last line of stdout: the result as JSON (DIR/estimate_accuracy.json with --out). Reported, not
a goal: the rates move with the server's load, which on a shared machine moves a lot.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import _lib
import progress_eta

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import estimates, phases  # noqa: E402

IMAGES, SMOKE_IMAGES = 50000, 20000
ROUNDS, SMOKE_ROUNDS = 3, 1
SETTLE_SECONDS, SETTLED_HISTORY = 30, 1000


# 100 projects own the images.
FILL = ("UPDATE images SET name = CONCAT('ubuntu-24.04-server-cloudimg-amd64-', id), disk_format = 'qcow2', "
        "container_format = 'bare', checksum = MD5(id), owner = MD5(RIGHT(id, 2)), size = 2361393152, "
        "virtual_size = 10737418240, min_disk = 10, min_ram = 512")


def fill(url):
    """Every image row as Glance fills it (--full-rows)."""
    engine = _lib.engine_for(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(FILL)
    engine.dispose()


def settle(engine):
    """Wait until InnoDB's purge has caught up (the history list short), SETTLE_SECONDS at most."""
    deadline = time.monotonic() + SETTLE_SECONDS
    with engine.connect() as conn:
        while time.monotonic() < deadline and int(conn.exec_driver_sql(
                "SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'").one()[1]) > SETTLED_HISTORY:
            time.sleep(0.5)


def fixed(step):
    if step["step"] == "copy":
        return estimates.copy_duration(step["rows"], False)
    return estimates.migration_duration(step["rows"], False)


def one_round(url):
    engine = _lib.engine_for(url)
    steps = []
    try:
        for phase in ("expand", "migrate", "contract"):
            if phase == "contract":
                with engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE TABLE images")
            settle(engine)
            started = time.monotonic()
            planned = phases.run(engine, phase, check_mode=True).plan.durations()
            check_seconds = time.monotonic() - started
            ran = phases.run(engine, phase).durations()
            for plan, real in zip(planned, ran):
                steps.append({"phase": phase, "step": plan["step"], "name": plan.get("table") or plan["name"],
                              "rows": plan["rows"], "real_seconds": real["seconds"],
                              "check_seconds": round(check_seconds, 2),
                              "sampled": plan["estimated"], "fixed": fixed(plan)})
    finally:
        engine.dispose()
    return steps


def accuracy(steps, basis):
    """How far ``basis``'s estimates were from the real seconds: the ratio estimate / real (its
    median, and the typical and worst factor off either way), and how many ranges held it."""
    ratios = [s[basis]["seconds"] / s["real_seconds"] for s in steps]
    off = [math.exp(abs(math.log(r))) for r in ratios]
    held = [s[basis]["low"] <= s["real_seconds"] <= s[basis]["high"] for s in steps]
    return {"n": len(steps), "median_ratio": round(statistics.median(ratios), 2),
            "median_factor_off": round(statistics.median(off), 2), "max_factor_off": round(max(off), 2),
            "within_range": sum(held),
            "median_range_width": round(statistics.median(s[basis]["high"] / s[basis]["low"] for s in steps), 2)}


def main():
    parser = argparse.ArgumentParser(description="Estimated against real seconds, sampled and fixed.")
    parser.add_argument("--smoke", action="store_true", help="%d images, %d round" % (SMOKE_IMAGES, SMOKE_ROUNDS))
    parser.add_argument("--images", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--full-rows", action="store_true", help="image rows filled as Glance fills them")
    parser.add_argument("--out", help="directory to write the JSON result into")
    args = parser.parse_args()
    images = args.images or (SMOKE_IMAGES if args.smoke else IMAGES)
    rounds = args.rounds or (SMOKE_ROUNDS if args.smoke else ROUNDS)
    steps = []
    for number in range(rounds):
        with _lib.scratch_databases(["mysql"], "estimate_accuracy") as (_workdir, dbs):
            _lib.log("estimate_accuracy: round %d of %d, %d images" % (number + 1, rounds, images))
            progress_eta.seed(dbs[0].url, images)
            if args.full_rows:
                fill(dbs[0].url)
            for step in one_round(dbs[0].url):
                steps.append(dict(step, round=number + 1))
    sampled = [s for s in steps if s["sampled"]["basis"].startswith("sampled")]
    result = {"benchmark": "estimate_accuracy", "images": images, "rounds": rounds, "smoke": args.smoke,
              "full_rows": args.full_rows,
              "method": "check mode's estimate of each copy and data migration (sampled on the server, and the "
                        "same rows at the fixed rates) against the real seconds of the run that followed",
              "machine": _lib.machine(), "servers": _lib.server_versions(["mysql"]), "steps": steps,
              "sampled": accuracy(sampled, "sampled") if sampled else None,
              "fixed": accuracy(steps, "fixed") if steps else None}
    line = "estimate_accuracy: %d images%s, %d steps; median factor off: sampled %s, fixed %s; within range: " \
           "sampled %s/%d, fixed %s/%d" % (
               images, " (full rows)" if args.full_rows else "", len(steps), (result["sampled"] or {}).get("median_factor_off"),
               (result["fixed"] or {}).get("median_factor_off"), (result["sampled"] or {}).get("within_range"),
               len(sampled), (result["fixed"] or {}).get("within_range"), len(steps))
    _lib.finish(result, args.out, "estimate_accuracy.json", line)


if __name__ == "__main__":
    _lib.run_main("estimate_accuracy", main)
