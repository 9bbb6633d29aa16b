"""Build a Glance database at a chosen revision holding N images and their satellites.

    python benchmarks/dataset.py --url URL [--images N] [--revision REV] [--out DIR]
    python benchmarks/dataset.py --smoke            # 2,000 images in a scratch MariaDB database

The schema comes from our own engine (sync to REV, default mitaka02: pre-Ocata,
images.is_public); the rows are loaded in bulk: LOAD DATA LOCAL INFILE on MariaDB,
COPY on PostgreSQL, one executemany transaction on SQLite. Per image, on average:
5 image_properties, 1.1 image_locations (meta_data JSON, half of them still with the
pre-Train "backend" key), 1.5 image_tags, and on 10 % of images 1-3 image_members;
about 5 % of every table is soft-deleted (deleted=1, deleted_at set). The data is
deterministic for a given --seed. Prints one JSON line: counts and seconds.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _lib  # noqa: E402

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases  # noqa: E402
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.deps import sa  # noqa: E402

CHUNK_IMAGES = 50_000  # images generated and loaded per round (bounded memory)
PROPERTY_NAMES = ("architecture", "hw_disk_bus", "os_distro", "os_version", "hypervisor_type")
DISK_FORMATS = ("qcow2", "raw", "vmdk", "iso")

# Every column we may fill, per table; a column the schema at REV lacks is left out.
COLUMNS = {
    "images": ("id", "name", "size", "status", "is_public", "created_at", "updated_at",
               "deleted_at", "deleted", "disk_format", "container_format", "checksum",
               "owner", "min_disk", "min_ram", "protected", "virtual_size", "visibility"),
    "image_properties": ("id", "image_id", "name", "value", "created_at", "updated_at",
                         "deleted_at", "deleted"),
    "image_locations": ("id", "image_id", "value", "created_at", "updated_at", "deleted_at",
                        "deleted", "meta_data", "status"),
    "image_members": ("id", "image_id", "member", "can_share", "created_at", "updated_at",
                      "deleted_at", "deleted", "status"),
    "image_tags": ("id", "image_id", "value", "created_at", "updated_at", "deleted_at",
                   "deleted"),
}


class Generator(object):
    """Deterministic rows, images in id order so that every index is filled in order."""

    def __init__(self, images, seed=1, backend_share=0.5):
        self.rng = random.Random(seed)
        self.backend_share = backend_share
        rng = self.rng
        self.ids = sorted(str(uuid.UUID(int=rng.getrandbits(128), version=4))
                          for n in range(images))
        self.owners = ["%032x" % rng.getrandbits(128) for n in range(1000)]
        # A pool of timestamps: formatting one per row would dominate the run.
        base = time.mktime((2016, 1, 1, 0, 0, 0, 0, 0, -1))
        self.stamps = sorted(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(base + i * 86_000))
                             for i in range(2000))
        self.next_id = {table: 1 for table in COLUMNS}

    def _sid(self, table):
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    def chunk(self, start, stop):
        """Rows of every table for images[start:stop], as {table: [tuple in COLUMNS order]}."""
        rng, stamps, owners = self.rng, self.stamps, self.owners
        rows = {table: [] for table in COLUMNS}
        images, props, locs = rows["images"], rows["image_properties"], rows["image_locations"]
        members, tags = rows["image_members"], rows["image_tags"]
        for n in range(start, stop):
            iid = self.ids[n]
            created = stamps[rng.randrange(2000)]
            deleted = rng.random() < 0.05
            deleted_at = created if deleted else None
            is_public = rng.random() < 0.2
            active_members = 0
            if rng.random() < 0.10:
                for m in range(rng.randint(1, 3)):
                    gone = rng.random() < 0.2
                    active_members += not gone
                    members.append((self._sid("image_members"), iid, owners[(n + m * 7) % 1000],
                                    False, created, None, created if gone else None, gone,
                                    "accepted"))
            visibility = "public" if is_public else ("shared" if active_members else "private")
            fmt = DISK_FORMATS[n % 4]
            size = rng.randrange(1 << 20, 1 << 33)
            images.append((iid, "image-%d" % n, size, "deleted" if deleted else "active",
                           is_public, created, created, deleted_at, deleted, fmt, "bare",
                           "%032x" % rng.getrandbits(128), owners[rng.randrange(1000)],
                           0, 0, False, size, visibility))
            for name in PROPERTY_NAMES:
                gone = deleted or rng.random() < 0.02
                props.append((self._sid("image_properties"), iid, name, "value-%d" % (n % 97),
                              created, None, created if gone else None, gone))
            for copy in range(2 if rng.random() < 0.1 else 1):
                key = "backend" if rng.random() < self.backend_share else "store"
                locs.append((self._sid("image_locations"), iid,
                             "rbd://fsid/images/%s/snap%d" % (iid, copy), created, None,
                             deleted_at, deleted, '{"%s": "ceph%d"}' % (key, copy),
                             "deleted" if deleted else "active"))
            for t in range(rng.choice((0, 1, 1, 2, 2, 3))):
                tags.append((self._sid("image_tags"), iid, "tag-%d" % ((n + t) % 50),
                             created, None, deleted_at, deleted))
        return rows


# ---- loaders: one per engine, each takes (table, columns, rows) for one chunk
def _tsv_value(value):
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "1" if value else "0"
    return str(value)


def load_mysql(raw, table, columns, rows):
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", prefix="bench_", delete=False) as tsv:
        for row in rows:
            tsv.write("\t".join(map(_tsv_value, row)))
            tsv.write("\n")
    try:
        cur = raw.cursor()
        cur.execute("LOAD DATA LOCAL INFILE '%s' INTO TABLE %s CHARACTER SET utf8 "
                    "FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' (%s)"
                    % (tsv.name, table, ", ".join(columns)))
        raw.commit()
    finally:
        os.unlink(tsv.name)


def load_postgresql(raw, table, columns, rows):
    with raw.cursor() as cur:
        with cur.copy("COPY %s (%s) FROM STDIN" % (table, ", ".join(columns))) as copy:
            for row in rows:
                copy.write_row(row)
    raw.commit()


def load_sqlite(raw, table, columns, rows):
    raw.cursor().executemany("INSERT INTO %s (%s) VALUES (%s)" % (
        table, ", ".join(columns), ", ".join("?" * len(columns))), rows)


def build(url, images=1_000_000, revision="mitaka02", seed=1, backend_share=0.5, log=None):
    """Create the schema at ``revision`` in the (empty) database at ``url`` and fill it."""
    started = time.monotonic()
    engine = _lib.engine_for(url)
    phases.run(engine, "sync", version=revision)
    schema_seconds = time.monotonic() - started
    present = {table: [c["name"] for c in sa.inspect(engine).get_columns(table)]
               for table in COLUMNS}
    dialect = engine.dialect.name
    engine.dispose()
    bulk = sa.create_engine(url, connect_args={"local_infile": True} if dialect == "mysql" else {})
    raw = bulk.raw_connection()
    loader = {"mysql": load_mysql, "postgresql": load_postgresql, "sqlite": load_sqlite}[dialect]
    counts = {table: 0 for table in COLUMNS}
    try:
        if dialect == "mysql":
            cur = raw.cursor()
            # Loading sorted, consistent data: skip the per-row checks.
            cur.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        gen = Generator(images, seed, backend_share)
        for start in range(0, images, CHUNK_IMAGES):
            chunk = gen.chunk(start, min(images, start + CHUNK_IMAGES))
            for table, full in COLUMNS.items():
                keep = [i for i, column in enumerate(full) if column in present[table]]
                rows = [tuple(row[i] for i in keep) for row in chunk[table]]
                if rows:
                    loader(raw, table, [full[i] for i in keep], rows)
                counts[table] += len(rows)
            if log:
                log("dataset: %d/%d images loaded" % (min(images, start + CHUNK_IMAGES), images))
        raw.commit()  # SQLite: everything in one transaction
    finally:
        raw.close()
        bulk.dispose()
    return {"revision": revision, "engine": dialect, "rows": counts,
            "schema_seconds": round(schema_seconds, 2),
            "seconds": round(time.monotonic() - started, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--url", help="database to fill (created empty beforehand)")
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--revision", default="mitaka02")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true",
                        help="2,000 images into a scratch MariaDB database, dropped afterwards")
    parser.add_argument("--engine", default="mysql", choices=("mysql", "postgresql", "sqlite"),
                        help="server for a scratch database when --url is not given")
    parser.add_argument("--out", help="directory for dataset.json")
    args = parser.parse_args(argv)
    images = 2000 if args.smoke else args.images
    if args.url:
        result = build(args.url, images, args.revision, args.seed, log=_lib.log)
    else:
        with _lib.scratch_databases([args.engine], "dataset") as (_workdir, (db,)):
            result = build(db.url, images, args.revision, args.seed, log=_lib.log)
            result["dropped"] = True
    result["smoke"] = args.smoke
    _lib.finish(result, args.out, "dataset.json",
                "dataset: %d images at %s on %s in %.1f s (%d rows)" % (
                    images, args.revision, result["engine"], result["seconds"],
                    sum(result["rows"].values())))


if __name__ == "__main__":
    main()
