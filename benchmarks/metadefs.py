"""The every-deploy metadefs load with nothing to do, per engine, as whole processes:

  ours    glance_db_metadefs (state present, path = Glance's shipped files) as a
          managed host runs it: `python AnsiballZ_glance_db_metadefs.py`; changed false
  glance  real `glance-manage --config-file F db load_metadefs --path P` (33.0.0), exit 0

kolla-ansible and openstack-ansible run `db sync` then `load_metadefs` on every
deploy; on an up-to-date cloud both have nothing to do. The database is synced
and the files loaded once by our engine (not timed); afterwards neither
contender changes a row (checked). Interleaved rounds in a rotating order;
median of the repeats. No goal: the figure is reported beside glance-manage's.

    .venv/bin/python benchmarks/metadefs.py [--smoke] [--repeats N] [--out DIR]

Last line of stdout: the result as JSON (DIR/metadefs.json with --out).
"""

from __future__ import annotations

from pathlib import Path

import _lib
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import metadefs


def _load_once(url, path, check_mode=False):
    engine = _lib.engine_for(url)
    try:
        return metadefs.load(engine, path, check_mode=check_mode)
    finally:
        engine.dispose()


def main():
    args = _lib.parse_args("No-op metadefs load: glance_db_metadefs vs glance-manage db load_metadefs.",
                           repeats=7, smoke_repeats=1)
    manage = _lib.glance_manage()
    files = str(Path(manage).resolve().parents[1] / "etc" / "glance" / "metadefs")
    with _lib.scratch_databases(args.engines, "metadefs") as (workdir, dbs):
        loaded = {}
        for db in dbs:
            _lib.sync_with_engine(db.url)
            loaded[db.engine] = _load_once(db.url, files).after
        _lib.log("metadefs: building the glance_db_metadefs payloads with ansible-core")
        payloads = _lib.build_payloads("glance_db_metadefs", [db.url for db in dbs], workdir,
                                       module_args={"path": files})
        confs = dict((db.engine, _lib.glance_config(db, workdir)) for db in dbs)

        def glance(db):
            seconds, done = _lib.timed([manage, "--config-file", str(confs[db.engine]), "db",
                                        "load_metadefs", "--path", files], cwd=str(workdir))
            if done.returncode != 0:
                raise RuntimeError("glance-manage db load_metadefs exited %d:\n%s"
                                   % (done.returncode, done.stderr[-2000:]))
            return seconds

        if not args.smoke:  # glance-manage's first start compiles and caches; not timed
            for db in dbs:
                glance(db)

        def run_once(db, kind):
            if kind == "ours":
                return _lib.run_payload(payloads[db.url], expect_changed=False)[0]
            return glance(db)

        times = _lib.interleaved_rounds(dbs, lambda db: ("ours", "glance"), run_once, args.repeats,
                                        "metadefs")
        for db in dbs:  # nothing was left to load: a check-mode read finds the same rows
            if _load_once(db.url, files, check_mode=True).changed:
                raise RuntimeError("%s: the metadefs changed during the benchmark" % db.engine)
        counts = dict((engine, dict((kind, len(rows)) for kind, rows in catalog.items()))
                      for engine, catalog in loaded.items())

    engines = {}
    for engine, by_kind in times.items():
        engines[engine] = _lib.compared(by_kind, 1.0)
        for key in ("goal_ratio", "goal_met"):  # reported without a goal
            engines[engine].pop(key, None)
        engines[engine]["rows"] = counts[engine]
    result = _lib.result_header("metadefs", args, {
        "ours": "python AnsiballZ_glance_db_metadefs.py, state present, path = Glance 33.0.0's "
                "etc/glance/metadefs, all already loaded (the payload ansible-core builds)",
        "glance": "glance-manage --config-file F db load_metadefs --path P (glance 33.0.0)",
    }, engines)
    parts = ["%s ours %.2f s, glance %.2f s (x%.2f)" % (
        engine, e["ours"]["median"], e["glance"]["median"], e["ratio_ours_to_glance"])
        for engine, e in engines.items()]
    _lib.finish(result, args.out, "metadefs.json", "metadefs (no-op load): " + "; ".join(parts))


if __name__ == "__main__":
    _lib.run_main("metadefs", main)
