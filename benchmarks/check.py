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

import _lib

GOAL = 1.0 / 4
GLANCE_CHECKS = ("sqlite", "mysql")  # glance-manage db check refuses PostgreSQL


def main():
    args = _lib.parse_args("Up-to-date check: glance_db_facts vs glance-manage db check.",
                           repeats=7, smoke_repeats=1)
    with _lib.scratch_databases(args.engines, "check") as (workdir, dbs):
        for db in dbs:
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

        times = _lib.interleaved_rounds(
            dbs, lambda db: ("ours", "glance") if db.engine in GLANCE_CHECKS else ("ours",),
            run_once, args.repeats, "check")
        for db in dbs:
            if db.version_rows() != _lib.heads():
                raise RuntimeError("%s: the database changed during the check" % db.engine)

    engines = {}
    for engine, by_kind in times.items():
        engines[engine] = _lib.compared(by_kind, GOAL)
        if "glance" not in by_kind:
            engines[engine].update(glance=None, note="glance-manage db check refuses PostgreSQL")
    result = _lib.result_header("check", args, {
        "ours": "python AnsiballZ_glance_db_facts.py (the payload ansible-core builds; "
                "a managed host's run minus SSH)",
        "glance": "glance-manage --config-file F db check (glance 33.0.0)",
    }, engines)
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
    _lib.run_main("check", main)
