"""The up-to-date check on a database at Glance's heads, per engine, as whole processes:

  ours    glance_db_facts as a managed host runs it: `python AnsiballZ_glance_db_facts.py`
          (the payload ansible-core builds, see _lib.py); its result says up_to_date
  glance  real `glance-manage --config-file F db check` (33.0.0), exit code 0

Glance refuses `db check` on PostgreSQL (it supports rolling upgrades only on
MySQL and SQLite), so there PostgreSQL has our figure alone. The database is
synced once by our engine and only read afterwards. Interleaved rounds in a
rotating order; median of the repeats.

    .venv/bin/python benchmarks/check.py [--smoke] [--repeats N] [--out DIR]

Last line of stdout: the result as JSON (DIR/check.json with --out).
Goal: ours at most a quarter of glance-manage db check's time on each engine.
"""

from __future__ import annotations

import subprocess
import sys

import _lib

GOAL = 1.0 / 4
GLANCE_CHECKS = ("sqlite", "mysql")  # glance-manage db check refuses PostgreSQL


def main():
    args = _lib.parse_args("Up-to-date check: glance_db_facts vs glance-manage db check.",
                           repeats=7, smoke_repeats=1)
    workdir = _lib.workdir("check")
    dbs = [_lib.ScratchDatabase(engine, "ck", workdir) for engine in args.engines]
    try:
        for db in dbs:
            db.create()
            _lib.sync_with_engine(db.url)
        _lib.log("check: building the glance_db_facts payloads with ansible-core")
        payloads = _lib.build_payloads("glance_db_facts", [db.url for db in dbs], workdir)
        manage = _lib.glance_manage() if any(db.engine in GLANCE_CHECKS for db in dbs) else None
        confs = dict((db.engine, _lib.glance_config(db, workdir)) for db in dbs)
        if not args.smoke:  # glance-manage's first start compiles and caches; not timed
            for db in dbs:
                if db.engine in GLANCE_CHECKS:
                    _lib.run_glance(manage, confs[db.engine], "check", workdir)

        def run_once(db, kind):
            if kind == "ours":
                seconds, result = _lib.run_payload(payloads[db.url], expect_changed=False)
                if not result["glance_db"]["up_to_date"]:
                    raise RuntimeError("%s: glance_db_facts says not up to date" % db.engine)
                return seconds
            return _lib.run_glance(manage, confs[db.engine], "check", workdir)[0]

        times = {}
        for db in dbs:
            times[db.engine] = {"ours": []}
            if db.engine in GLANCE_CHECKS:
                times[db.engine]["glance"] = []
        for round_no in range(args.repeats):
            for db in dbs:
                kinds = sorted(times[db.engine], reverse=bool(round_no % 2))
                for kind in kinds:
                    times[db.engine][kind].append(run_once(db, kind))
            _lib.log("check: round %d/%d done" % (round_no + 1, args.repeats))
        for db in dbs:
            if db.version_rows() != _lib.HEADS:
                raise RuntimeError("%s: the database changed during the check" % db.engine)
    finally:
        for db in dbs:
            db.drop()
        _lib.remove(workdir)

    engines = {}
    for engine, by_kind in times.items():
        entry = dict((kind, _lib.summary(runs)) for kind, runs in by_kind.items())
        if "glance" in entry:
            ratio = entry["ours"]["median"] / entry["glance"]["median"]
            entry.update(ratio_ours_to_glance=round(ratio, 3), goal_ratio=GOAL,
                         goal_met=ratio <= GOAL)
        else:
            entry.update(glance=None, note="glance-manage db check refuses PostgreSQL")
        engines[engine] = entry
    result = {
        "benchmark": "check",
        "statistic": "median wall seconds of whole processes",
        "repeats": args.repeats,
        "smoke": args.smoke,
        "method": {
            "ours": "python AnsiballZ_glance_db_facts.py (the payload ansible-core builds; "
                    "a managed host's run minus SSH)",
            "glance": "glance-manage --config-file F db check (glance 33.0.0)",
        },
        "machine": _lib.machine(),
        "servers": _lib.server_versions(args.engines),
        "engines": engines,
        "goals_met": all(e["goal_met"] for e in engines.values() if "goal_met" in e),
    }
    parts = []
    for engine, e in engines.items():
        if e.get("glance"):
            parts.append("%s ours %.2f s, glance %.2f s (x%.2f, goal <= x%.2f %s)"
                         % (engine, e["ours"]["median"], e["glance"]["median"],
                            e["ratio_ours_to_glance"], GOAL, "met" if e["goal_met"] else "NOT met"))
        else:
            parts.append("%s ours %.2f s (glance refuses db check)" % (engine, e["ours"]["median"]))
    _lib.finish(result, args.out, "check.json", "check: " + "; ".join(parts))


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print("check: FAILED: %s" % exc, file=sys.stderr)
        sys.exit(1)
