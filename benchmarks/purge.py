"""Purge about a million soft-deleted rows while API writers work: ours against glance-manage.

A MariaDB database at head gets IMAGES images (half of them deleted 400 days
ago with their properties, tag, location and member) and IMAGES/2 tasks (80 %
deleted); live images keep a live property, one removed 400 days ago and one
removed 10 days ago. `purge --age_in_days 30` then has about 4.3 x IMAGES rows
to delete over task_info, image_properties, image_tags, image_locations,
image_members and tasks. Each contender gets the same data, freshly built,
and purges it while the writers of the rolling benchmark (benchmarks/canary.py,
release-N writers: at head both releases of a rolling upgrade write the same
columns) create, update, share and delete images:

* ours: glance_db_purge's engine, max_rows -1 (every batch its own transaction);
* glance: `glance-manage db purge --age_in_days 30 --max_rows -1` (one DELETE per table).

Reports rows/s and the writers' p50/p99/max latency and failed writes during the purge.

    python benchmarks/purge.py [--images 240000] [--smoke] [--skip-glance] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import canary as canary_mod  # noqa: E402
import _lib  # noqa: E402

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import purge  # noqa: E402

AGE = 30
OLD = "NOW() - INTERVAL 400 DAY + INTERVAL i.seq SECOND"  # distinct, all older than AGE
YOUNG = "NOW() - INTERVAL 10 DAY + INTERVAL i.seq SECOND"
IMAGE_ID = "CONCAT('00000000-0000-0000-0000-', LPAD(i.seq, 12, '0'))"
TASK_ID = "CONCAT('10000000-0000-0000-0000-', LPAD(i.seq, 12, '0'))"
# Ids spread over the whole key space, as Glance's uuid4 ones are: a new image or task then
# falls between purged ones (the MD5 of the number, with a UUID's dashes).
_UUID_OF = "INSERT(INSERT(INSERT(INSERT(MD5(%s), 21, 0, '-'), 17, 0, '-'), 13, 0, '-'), 9, 0, '-')"
SPREAD_IMAGE_ID = _UUID_OF % "CONCAT('image', i.seq)"
SPREAD_TASK_ID = _UUID_OF % "CONCAT('task', i.seq)"
DELETED = "i.seq % 2 = 1"  # odd images are deleted


def populate(url, images, spread=False):
    """The soft-deleted rows (MariaDB's Sequence engine makes them in a few statements).
    ``spread``: image and task ids spread over the key space (else in one narrow run)."""
    image_id, task_id = (SPREAD_IMAGE_ID, SPREAD_TASK_ID) if spread else (IMAGE_ID, TASK_ID)
    created = "NOW() - INTERVAL 500 DAY"
    statements = [
        "INSERT INTO images (id, name, size, status, created_at, deleted, deleted_at, min_disk, min_ram, "
        "protected, visibility, os_hidden) SELECT %s, CONCAT('img-', i.seq), 1024, "
        "IF(%s, 'deleted', 'active'), %s, %s, IF(%s, %s, NULL), 0, 0, 0, 'private', 0 FROM seq_1_to_%d i"
        % (image_id, DELETED, created, DELETED, DELETED, OLD, images),
        # Three properties each: a deleted image's went with it; a live image keeps p0, lost p1 long
        # ago and p2 recently.
        "INSERT INTO image_properties (image_id, name, value, created_at, deleted, deleted_at) "
        "SELECT %s, CONCAT('p', p.seq), 'v', %s, IF(%s, 1, p.seq > 0), "
        "IF(%s, %s, CASE p.seq WHEN 1 THEN %s WHEN 2 THEN %s END) FROM seq_1_to_%d i JOIN seq_0_to_2 p"
        % (image_id, created, DELETED, DELETED, OLD, OLD, YOUNG, images),
        "INSERT INTO image_tags (image_id, value, created_at, deleted, deleted_at) "
        "SELECT %s, 'tag', %s, %s, IF(%s, %s, NULL) FROM seq_1_to_%d i"
        % (image_id, created, DELETED, DELETED, OLD, images),
        "INSERT INTO image_locations (image_id, value, created_at, deleted, deleted_at, meta_data, status) "
        "SELECT %s, CONCAT('file:///images/', i.seq), %s, %s, IF(%s, %s, NULL), '{}', "
        "IF(%s, 'deleted', 'active') FROM seq_1_to_%d i"
        % (image_id, created, DELETED, DELETED, OLD, DELETED, images),
        "INSERT INTO image_members (image_id, member, can_share, created_at, deleted, deleted_at, status) "
        "SELECT %s, 'tenant', 0, %s, %s, IF(%s, %s, NULL), 'accepted' FROM seq_1_to_%d i"
        % (image_id, created, DELETED, DELETED, OLD, images),
        "INSERT INTO tasks (id, type, status, owner, created_at, deleted, deleted_at) "
        "SELECT %s, 'import', 'success', 'o', %s, "
        "i.seq %% 5 <> 0, IF(i.seq %% 5 <> 0, %s, NULL) FROM seq_1_to_%d i"
        % (task_id, created, OLD, max(1, images // 2)),
        "INSERT INTO task_info (task_id, input) SELECT id, '{}' FROM tasks",
    ]
    engine = _lib.engine_for(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement.replace("%", "%%"))  # PyMySQL's paramstyle
    engine.dispose()


def purgeable(url):
    """Rows per table that `purge --age_in_days AGE --max_rows -1` would delete."""
    engine = _lib.engine_for(url)
    try:
        return purge.Purge(engine, age_in_days=AGE, max_rows=-1).plan()
    finally:
        engine.dispose()


def run_ours(url, batch_size):
    engine = _lib.engine_for(url)
    try:
        job = purge.Purge(engine, age_in_days=AGE, max_rows=-1, batch_size=batch_size)
        result = purge.run(job)
        return {"ok": True, "rows": result["rows"], "lock_retries": job.retries}
    finally:
        engine.dispose()


def run_glance(url, workdir, manage):
    conf = Path(workdir) / "glance-purge.conf"
    conf.write_text("[database]\nconnection = %s\n" % url)
    done = subprocess.run([manage, "--config-file", str(conf), "db", "purge", "--age_in_days", str(AGE),
                           "--max_rows", "-1"], capture_output=True, text=True, cwd=str(workdir), check=False)
    error = None if done.returncode == 0 else (done.stdout + done.stderr).strip().splitlines()[-1]
    return {"ok": done.returncode == 0, "error": error}


def contender(name, images, load, settle, run):
    """A fresh database, its data, the writers, and one purge (``run(url)``) under them."""
    with _lib.scratch_databases(["mysql"], "purge") as (_workdir, (db,)):
        url = db.url
        _lib.sync_with_engine(url)
        started = time.time()
        populate(url, images)
        before = purgeable(url)
        _lib.log("%s: %d images, %d rows to purge, built in %.1f s"
                 % (name, images, sum(before.values()), time.time() - started))
        load_writers = canary_mod.Canary(url, old_writers=0, new_writers=load["writers"], rate=load["rate"])
        load_writers.start()
        try:
            load_writers.old_nodes_gone()  # release-N writers only: the schema is at head
            time.sleep(settle)
            start = time.time()
            outcome = run(url)
            end = time.time()
            time.sleep(settle)
            ops = load_writers.stop()[0]
        except BaseException:
            load_writers.terminate()
            raise
        after = purgeable(url)
    seconds = end - start
    purged = sum(before.values()) - sum(after.values())
    inside = [o for o in ops if o[0] < end and o[0] + o[1] > start]
    outside = [o for o in ops if not (o[0] < end and o[0] + o[1] > start)]
    figures = dict(outcome, seconds=round(seconds, 2), rows_to_purge=before, rows_left=after,
                   rows_left_total=sum(after.values()),
                   rows_purged=purged, rows_per_second=round(purged / seconds) if seconds else None,
                   writers_during=dict(_lib.percentiles([o[1] for o in inside if o[4]]),
                                       failed_writes=sum(1 for o in inside if not o[4]),
                                       errors=sorted(set(o[5] for o in inside if not o[4]))[:3]),
                   writers_outside=dict(_lib.percentiles([o[1] for o in outside if o[4]]),
                                        failed_writes=sum(1 for o in outside if not o[4])))
    _lib.log("%s: purged %d rows in %.1f s (%s rows/s); writers p99 %s ms, max %s ms, %d failed"
             % (name, purged, seconds, figures["rows_per_second"], figures["writers_during"]["p99_ms"],
                figures["writers_during"]["max_ms"], figures["writers_during"]["failed_writes"]))
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--images", type=int, default=240_000, help="about 4.3 purged rows each")
    parser.add_argument("--writers", type=int, default=8, help="API writers (the rolling benchmark's 4 + 4)")
    parser.add_argument("--rate", type=float, default=20.0, help="operations/s per writer")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds of load before and after")
    parser.add_argument("--batch-size", type=int, default=purge.DEFAULT_BATCH_SIZE)
    parser.add_argument("--skip-glance", action="store_true", help="run ours only")
    parser.add_argument("--smoke", action="store_true", help="1,000 images, 4 writers, short pauses")
    parser.add_argument("--out", help="directory for purge.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.writers, args.settle = 1000, 4, 0.5
    load = {"writers": args.writers, "rate": args.rate}
    result = {"benchmark": "purge", "images": args.images, "smoke": args.smoke, "load": load,
              "age_in_days": AGE, "batch_size": args.batch_size, "machine": _lib.machine(),
              "servers": _lib.server_versions(["mysql"]), "engines": {}}
    engines = result["engines"]
    engines["ours"] = contender("ours", args.images, load, args.settle,
                                lambda url: run_ours(url, args.batch_size))
    if not args.skip_glance:
        manage = _lib.glance_manage()
        workdir = _lib.workdir("purge")
        try:
            engines["glance_manage"] = contender("glance_manage", args.images, load, args.settle,
                                                 lambda url: run_glance(url, workdir, manage))
        finally:
            _lib.remove(workdir)
    failed = [name for name, e in engines.items() if name == "ours" and (not e["ok"] or e["rows_left_total"])]
    line = "purge: " + "; ".join(
        "%s %d rows in %.1f s (%s rows/s), writers p99 %s ms max %s ms, %d failed%s"
        % (name, e["rows_purged"], e["seconds"], e["rows_per_second"], e["writers_during"]["p99_ms"],
           e["writers_during"]["max_ms"], e["writers_during"]["failed_writes"],
           "" if e["ok"] else " (exit: %s)" % e.get("error"))
        for name, e in engines.items())
    _lib.finish(result, args.out, "purge.json", line)
    if failed:
        print("purge: ours did not purge everything", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
