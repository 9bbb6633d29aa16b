"""A sync with nothing to do, per engine, as whole processes: what every deploy
of an up-to-date cloud runs (kolla-ansible and openstack-ansible call db sync
on each run).

  ours    glance_db_sync as a managed host runs it: `python AnsiballZ_glance_db_sync.py`
          (the payload ansible-core builds, see _lib.py); changed false; given the
          connection URL Glance is given (on PostgreSQL postgresql+psycopg2://,
          Glance's driver, which a Glance host has)
  ours_psycopg  PostgreSQL only: the same with postgresql+psycopg:// (psycopg 3,
          the driver requirements.txt installs); no goal
  glance  real `glance-manage --config-file F db sync` (33.0.0), which prints
          "Database is up to date. No migrations needed."

The database is synced once by our engine and only read afterwards (checked:
still at the heads). Interleaved rounds in a rotating order; median of the repeats.

    .venv/bin/python benchmarks/noop_sync.py [--smoke] [--repeats N] [--out DIR]

Last line of stdout: the result as JSON (DIR/noop_sync.json with --out).
Goal: ours at most a quarter of glance-manage db sync's time on each engine.
"""

from __future__ import annotations

import _lib

GOAL = 1.0 / 4
UP_TO_DATE = "Database is up to date. No migrations needed."


def psycopg3_note(entry):
    """Ours with psycopg 3 beside the figures, where it ran (PostgreSQL)."""
    if "ours_psycopg" not in entry:
        return ""
    seconds = entry["ours_psycopg"]["median"]
    return ", with psycopg 3 %.2f s (x%.2f)" % (seconds, seconds / entry["glance"]["median"])


def main():
    args = _lib.parse_args("No-op sync: glance_db_sync vs glance-manage db sync, up to date.",
                           repeats=7, smoke_repeats=1)
    with _lib.scratch_databases(args.engines, "noop_sync") as (workdir, dbs):
        for db in dbs:
            _lib.sync_with_engine(db.url)
        _lib.log("noop_sync: building the glance_db_sync payloads with ansible-core")
        urls = [db.glance_url for db in dbs] + [db.url for db in dbs if db.url != db.glance_url]
        payloads = _lib.build_payloads("glance_db_sync", urls, workdir)
        manage = _lib.glance_manage()
        confs = dict((db.engine, _lib.glance_config(db, workdir)) for db in dbs)
        if not args.smoke:  # glance-manage's first start compiles and caches; not timed
            for db in dbs:
                _lib.run_glance(manage, confs[db.engine], "sync", workdir)

        def run_once(db, kind):
            if kind != "glance":
                url = db.glance_url if kind == "ours" else db.url
                seconds, result = _lib.run_payload(payloads[url], expect_changed=False)
                if result.get("msg") != UP_TO_DATE:
                    raise RuntimeError("%s: glance_db_sync said %r" % (db.engine, result.get("msg")))
                return seconds
            return _lib.run_glance(manage, confs[db.engine], "sync", workdir)[0]

        def kinds(db):
            return ("ours", "glance") + (("ours_psycopg",) if db.url != db.glance_url else ())

        times = _lib.interleaved_rounds(dbs, kinds, run_once,
                                        args.repeats, "noop_sync")
        for db in dbs:
            if db.version_rows() != _lib.heads():
                raise RuntimeError("%s: the database changed during the no-op syncs" % db.engine)

    engines = dict((engine, _lib.compared(by_kind, GOAL)) for engine, by_kind in times.items())
    result = _lib.result_header("noop_sync", args, {
        "ours": "python AnsiballZ_glance_db_sync.py on a database at the heads (the payload "
                "ansible-core builds; a managed host's run minus SSH), with Glance's connection URL",
        "ours_psycopg": "the same on PostgreSQL with postgresql+psycopg:// (psycopg 3)",
        "glance": "glance-manage --config-file F db sync (glance 33.0.0) on the same database",
    }, engines)
    line = "noop_sync: " + "; ".join(
        "%s ours %.2f s, glance %.2f s (x%.2f, goal <= x%.2f %s)%s"
        % (engine, e["ours"]["median"], e["glance"]["median"], e["ratio_ours_to_glance"], GOAL,
           "met" if e["goal_met"] else "NOT met",
           psycopg3_note(e))
        for engine, e in engines.items())
    _lib.finish(result, args.out, "noop_sync.json", line)


if __name__ == "__main__":
    _lib.run_main("noop_sync", main)
