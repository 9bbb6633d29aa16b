"""Write latency on images with and without a held swap (hold_swap), on one MariaDB server.

    python benchmarks/held_swap_latency.py [IMAGES] [WRITES]

Seeds a mitaka02 database, times WRITES single-row transactions (an insert and an
update of images) with no copy, then again while an expand holds its first copy's
swap (the copy's triggers write each row to both tables), and prints p50/p95/max.
"""
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import _lib  # noqa: E402,F401  pylint: disable=unused-import
sys.path.insert(0, str(REPO / "tests" / "functional"))
import sqlalchemy as sa  # noqa: E402
from conftest import TestDatabase  # noqa: E402
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases  # noqa: E402
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.options import RunOptions  # noqa: E402
from seed import IMAGE_INSERT, image_id, seed_pre_ocata  # noqa: E402


def timed_writes(engine, first, count):
    took = []
    with engine.connect() as conn:
        for n in range(first, first + count):
            started = time.monotonic()
            with conn.begin():
                row = dict(id=image_id(n), name="w-%d" % n, is_public=True, deleted=False, protected=False)
                conn.execute(sa.text(IMAGE_INSERT), row)
                conn.execute(sa.text("UPDATE images SET name = 'u' WHERE id = :i"), dict(i=image_id(n - first)))
            took.append((time.monotonic() - started) * 1000)
    took.sort()
    return "p50 %.2f ms, p95 %.2f ms, max %.2f ms" % (statistics.median(took), took[int(len(took) * 0.95)], took[-1])


def main(images=12000, writes=500):
    tmp = pathlib.Path(tempfile.mkdtemp())
    db = TestDatabase("mysql", tmp)
    release = tmp / "release"
    try:
        phases.run(db.engine, "sync", version="mitaka02")
        seed_pre_ocata(db, images)
        writer = sa.create_engine(db.engine.url, poolclass=sa.pool.NullPool)
        print("no copy:     ", timed_writes(writer, 2000000, writes))
        run = threading.Thread(target=phases.run, args=(db.engine, "expand"),
                               kwargs=dict(options=RunOptions(hold_swap=str(release))))
        run.start()
        while not release.exists():
            time.sleep(0.1)
        print("swap held:   ", timed_writes(writer, 3000000, writes))
        os.remove(release)
        while run.is_alive():  # the later copies hold too: release each
            if release.exists():
                os.remove(release)
            time.sleep(0.1)
        writer.dispose()
    finally:
        db.drop()


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:]])
