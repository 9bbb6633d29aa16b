"""Fresh sync of an empty database, per engine, as whole processes:

  ours    glance_db_sync as a managed host runs it: `python AnsiballZ_glance_db_sync.py`,
          the payload ansible-core builds for the task (see _lib.py)
  glance  real `glance-manage --config-file F db sync` (33.0.0)
  floor   the head schema loaded with the database's own client (sqlite3, mysql,
          psql) from a dump of a database our module synced in this run (schema +
          alembic_version rows): no migration tool can do less work

Each timed run starts from a freshly created empty database (not timed) and is
checked to end at Glance's heads. The three are interleaved in every round, in
a rotating order, so background load hits them alike. Median of the repeats.

    .venv/bin/python benchmarks/fresh_sync.py [--smoke] [--repeats N] [--out DIR]

Last line of stdout: the result as JSON (DIR/fresh_sync.json with --out).
Goal: ours at most a third of glance-manage's time on each engine.
"""

from __future__ import annotations

import subprocess

import _lib

GOAL = 1.0 / 3
KINDS = ("ours", "glance", "floor")


def dump_schema(db, workdir):
    """A SQL file that recreates ``db`` (schema and alembic_version rows)."""
    path = workdir / ("head-%s.sql" % db.engine)
    if db.engine == "sqlite":
        text = _output(["sqlite3", str(db.path), ".dump"])
    elif db.engine == "mysql":
        base = ["mysqldump", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "--skip-comments"]
        text = (_output(base + ["--no-data", db.name]) +
                _output(base + ["--no-create-info", db.name, "alembic_version"]))
    else:
        base = ["pg_dump", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "--no-owner",
                "--no-privileges"]
        text = (_output(base + ["--schema-only", db.name]) +
                _output(base + ["--data-only", "-t", "alembic_version", db.name]))
    path.write_text(text)
    return path


def _output(argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def load_schema(db, dump):
    """Time loading the dump into the empty ``db`` with the database's client."""
    if db.engine == "sqlite":
        argv = ["sqlite3", str(db.path)]
    elif db.engine == "mysql":
        argv = ["mysql", "-h", "127.0.0.1", "-P", "3306", "-u", "root", db.name]
    else:
        argv = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-X", "-q",
                "--single-transaction", "-v", "ON_ERROR_STOP=1", "-d", db.name]
    with open(dump) as handle:
        seconds, done = _lib.timed(argv, stdin=handle)
    if done.returncode != 0:
        raise RuntimeError("%s could not load the dump: %s" % (argv[0], done.stderr[-2000:]))
    return seconds


def main():
    args = _lib.parse_args("Fresh sync: our module vs glance-manage db sync vs the floor.",
                           repeats=7, smoke_repeats=1)
    with _lib.scratch_databases(args.engines, "fresh_sync") as (workdir, dbs):
        _lib.log("fresh_sync: building the glance_db_sync payloads with ansible-core")
        payloads = _lib.build_payloads("glance_db_sync", [db.url for db in dbs], workdir)
        manage = _lib.glance_manage()
        dumps, confs = {}, {}
        for db in dbs:
            if db.version_rows() != _lib.heads():
                raise RuntimeError("%s: the payload's first run did not reach the heads" % db.engine)
            dumps[db.engine] = dump_schema(db, workdir)
            confs[db.engine] = _lib.glance_config(db, workdir)
            if not args.smoke:  # glance-manage's first start compiles and caches; not timed
                db.create()
                _lib.run_glance(manage, confs[db.engine], "sync", workdir)

        def run_once(db, kind):
            db.create()
            if kind == "ours":
                seconds = _lib.run_payload(payloads[db.url], expect_changed=True)[0]
            elif kind == "glance":
                seconds = _lib.run_glance(manage, confs[db.engine], "sync", workdir)[0]
            else:
                seconds = load_schema(db, dumps[db.engine])
            rows = db.version_rows()
            if rows != _lib.heads():
                raise RuntimeError("%s %s left alembic_version %s" % (db.engine, kind, rows))
            return seconds

        times = _lib.interleaved_rounds(dbs, lambda db: KINDS, run_once, args.repeats, "fresh_sync")

    engines = dict((engine, _lib.compared(by_kind, GOAL)) for engine, by_kind in times.items())
    result = _lib.result_header("fresh_sync", args, {
        "ours": "python AnsiballZ_glance_db_sync.py (the payload ansible-core builds; "
                "a managed host's run minus SSH)",
        "glance": "glance-manage --config-file F db sync (glance 33.0.0)",
        "floor": "sqlite3 / mysql / psql loading a dump of the head schema + alembic_version",
    }, engines)
    line = "fresh_sync: " + "; ".join(
        "%s ours %.2f s, glance %.2f s (x%.2f, goal <= x%.2f %s), floor %.2f s"
        % (engine, e["ours"]["median"], e["glance"]["median"], e["ratio_ours_to_glance"], GOAL,
           "met" if e["goal_met"] else "NOT met", e["floor"]["median"])
        for engine, e in engines.items())
    _lib.finish(result, args.out, "fresh_sync.json", line)


if __name__ == "__main__":
    _lib.run_main("fresh_sync", main)
