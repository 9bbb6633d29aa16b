"""Rows per second of our Ocata data migration against the floor: one raw UPDATE.

    python benchmarks/throughput.py [--images 1000000] [--batch-size N] [--out DIR]
    python benchmarks/throughput.py --smoke

Builds the dataset at mitaka02 in a scratch MariaDB (or --engine sqlite)
database, runs our expand, then times our batched ``migrate`` of images.visibility.
Then it sets visibility back to NULL and times one
``UPDATE images SET visibility = CASE ... END WHERE visibility IS NULL``: the same
rows, the same expression, the same triggers, but one big transaction that would
hold every row lock at once (the floor, not something to run online). Both must
leave the same visibilities. JSON on the last line (also DIR/throughput.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _lib  # noqa: E402
import dataset  # noqa: E402

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases  # noqa: E402
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.deps import sa  # noqa: E402
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.options import default  # noqa: E402
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.revisions.visibility import (  # noqa: E402
    UPDATE_TRIGGER,
)

FLOOR_SQL = (
    "UPDATE images SET visibility = CASE WHEN is_public THEN 'public' "
    "WHEN EXISTS (SELECT 1 FROM image_members m WHERE m.image_id = images.id "
    "AND NOT m.deleted) THEN 'shared' ELSE 'private' END WHERE visibility IS NULL")
COUNTS_SQL = "SELECT visibility, COUNT(*) FROM images GROUP BY visibility"


def measure(url, images, batch_size=None, log=None):
    # No pre-Train "backend" keys: migrate then moves images.visibility only.
    built = dataset.build(url, images, "mitaka02", backend_share=0.0)
    engine = _lib.engine_for(url)
    try:
        phases.run(engine, "expand")
        if log:
            log("throughput: dataset of %d images built and expanded" % images)
        args = {"batch_size": batch_size} if batch_size else {}
        started = time.monotonic()
        outcome = phases.run(engine, "migrate", **args)
        ours_seconds = time.monotonic() - started
        ours_rows = sum(m["migrated"] for m in outcome.migrated)
        with engine.connect() as conn:
            ours_counts = dict(conn.execute(sa.text(COUNTS_SQL)).all())
        with engine.begin() as conn:
            mysql = conn.dialect.name == "mysql"
            if mysql:  # the update trigger refuses visibility = NULL: lift it for the reset
                conn.exec_driver_sql("DROP TRIGGER update_visibility")
            conn.exec_driver_sql("UPDATE images SET visibility = NULL")
            if mysql:
                conn.exec_driver_sql(UPDATE_TRIGGER)
        with engine.begin() as conn:
            started = time.monotonic()
            floor_rows = conn.exec_driver_sql(FLOOR_SQL).rowcount
        floor_seconds = time.monotonic() - started
        with engine.connect() as conn:
            floor_counts = dict(conn.execute(sa.text(COUNTS_SQL)).all())
    finally:
        engine.dispose()

    def rate(rows, seconds):
        return round(rows / seconds) if seconds else None

    return {
        "images": images, "engine": built["engine"], "dataset_seconds": built["seconds"],
        "ours": {"rows": ours_rows, "seconds": round(ours_seconds, 2),
                 "rows_per_s": rate(ours_rows, ours_seconds),
                 "batch_size": batch_size or default("batch_size")},
        "floor": {"rows": floor_rows, "seconds": round(floor_seconds, 2),
                  "rows_per_s": rate(floor_rows, floor_seconds)},
        "ours_vs_floor": round(floor_seconds / ours_seconds, 3) if ours_seconds else None,
        "same_result": ours_counts == floor_counts,
        "visibilities": {str(k): v for k, v in sorted(ours_counts.items(), key=str)},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--engine", default="mysql", choices=("mysql", "sqlite"))
    parser.add_argument("--smoke", action="store_true", help="2,000 images")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    images = 2000 if args.smoke else args.images
    with _lib.scratch_databases([args.engine], "throughput") as (_workdir, (db,)):
        result = measure(db.url, images, args.batch_size, _lib.log)
    result["smoke"] = args.smoke
    line = ("throughput (%d images, %s): ours %s rows/s (%s rows in %s s, batches of %d), "
            "one raw UPDATE %s rows/s (%s s); ours runs at %.0f %% of the floor; same result: %s" % (
                images, result["engine"], result["ours"]["rows_per_s"], result["ours"]["rows"],
                result["ours"]["seconds"], result["ours"]["batch_size"], result["floor"]["rows_per_s"],
                result["floor"]["seconds"], 100 * (result["ours_vs_floor"] or 0), result["same_result"]))
    _lib.finish(result, args.out, "throughput.json", line)


if __name__ == "__main__":
    main()
