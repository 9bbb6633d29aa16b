"""Restore a large Glance database: glance_db_restore against the server's own client, same dump.

Per engine: a scratch database gets IMAGES images and their satellites
(benchmarks/dataset.py, at mitaka02), glance_db_backup's engine dumps it, then

* ours: glance_db_restore's engine restores the dump over that database (force: it
  replaces every table), including what it does around the load: the sha256 check,
  the rows counted before and after, the clearing under the migration lock;
* client: the server's own client loads the same dump into an empty database, as an
  operator would by hand (``mysql DB < dump``; ``pg_restore --no-owner --dbname DB``).

Both restored databases are compared (rows per table). Prints one JSON line.

    python benchmarks/restore.py [--images 1000000] [--engines mysql,postgresql] [--smoke] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _lib  # noqa: E402
import dataset  # noqa: E402

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import backup, restore  # noqa: E402

BY_HAND = {"mysql": "mysql", "postgresql": "pg_restore", "sqlite": "cp"}


def run_tool(argv, environ_update, pass_fds):
    """What AnsibleModule.run_command does for the modules."""
    done = subprocess.run(argv, env=dict(os.environ, **environ_update), pass_fds=pass_fds, capture_output=True,
                          text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def client_restore(db, dump):
    """The server's own client, by hand."""
    if db.engine == "mysql":
        server = _lib.MYSQL
        with open(dump, "rb") as handle:
            seconds, done = _lib.timed(["mysql", "--protocol=TCP", "--host=" + server["host"],
                                        "--port=%d" % server["port"], "--user=" + server["user"], db.name],
                                       stdin=handle)
    elif db.engine == "postgresql":
        seconds, done = _lib.timed(["pg_restore", "--host=127.0.0.1", "--username=postgres", "--no-owner",
                                    "--dbname=" + db.name, dump])
    else:
        started = time.perf_counter()
        subprocess.run(["cp", dump, str(db.path)], check=True)
        return time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError("%s: %s" % (done.args[0], done.stderr.strip()[-300:]))
    return seconds


def rows_of(url):
    engine = _lib.engine_for(url)
    try:
        return backup.describe(engine)["rows"]
    finally:
        engine.dispose()


def bench_engine(engine_name, images, workdir):
    source = _lib.ScratchDatabase(engine_name, "rs", workdir)
    by_hand = _lib.ScratchDatabase(engine_name, "rc", workdir)
    try:
        source.create()
        by_hand.create()
        built = dataset.build(source.url, images, log=_lib.log)
        _lib.log("restore/%s: %d images built in %.1f s" % (engine_name, images, built["seconds"]))
        taken = backup.take(_lib.engine_for(source.url).url, str(workdir), run_tool)
        _lib.log("restore/%s: dump of %d bytes in %.1f s" % (engine_name, taken["size"], taken["seconds"]))

        engine = _lib.engine_for(source.url)
        started = time.perf_counter()
        try:
            result = restore.run(engine, run_tool, path=taken["path"], force=True)
        finally:
            engine.dispose()
        ours = time.perf_counter() - started
        _lib.log("restore/%s: ours %.1f s (%.1f s under the lock)" % (engine_name, ours, result["seconds"]))

        theirs = client_restore(by_hand, taken["path"])
        _lib.log("restore/%s: %s by hand %.1f s" % (engine_name, BY_HAND[engine_name], theirs))
        same = result["after"]["rows"] == rows_of(by_hand.url) == taken["rows"]
        return {"images": images, "rows": sum(taken["rows"].values()), "dump_bytes": taken["size"],
                "dump_seconds": taken["seconds"], "build_seconds": built["seconds"],
                "ours_seconds": round(ours, 2), "ours_under_lock_seconds": result["seconds"],
                "client": BY_HAND[engine_name], "client_seconds": round(theirs, 2),
                "ratio_ours_to_client": round(ours / theirs, 3) if theirs else None,
                "same_rows": same}
    finally:
        source.drop()
        by_hand.drop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--engines", default="mysql,postgresql", help="comma-separated: mysql, postgresql, sqlite")
    parser.add_argument("--smoke", action="store_true", help="2,000 images")
    parser.add_argument("--out", help="directory for restore.json")
    parser.add_argument("--name", default="restore.json", help="file name of the result in --out")
    args = parser.parse_args(argv)
    images = 2000 if args.smoke else args.images
    engines = [e for e in args.engines.split(",") if e]
    result = {"benchmark": "restore", "images": images, "smoke": args.smoke, "machine": _lib.machine(),
              "servers": _lib.server_versions(engines), "engines": {}}
    workdir = _lib.workdir("restore")
    try:
        for engine_name in engines:
            result["engines"][engine_name] = bench_engine(engine_name, images, workdir)
    finally:
        _lib.remove(workdir)
    line = "restore: " + "; ".join(
        "%s %d images (%d rows, %d MB dump): ours %.1f s, %s %.1f s (x%.2f)%s"
        % (name, e["images"], e["rows"], e["dump_bytes"] // 2 ** 20, e["ours_seconds"], e["client"],
           e["client_seconds"], e["ratio_ours_to_client"] or 0, "" if e["same_rows"] else ", ROWS DIFFER")
        for name, e in result["engines"].items())
    _lib.finish(result, args.out, args.name, line)
    if not all(e["same_rows"] for e in result["engines"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
