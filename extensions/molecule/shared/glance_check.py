"""Seed the database of a molecule scenario, and what the scenarios' checks share.

    glance_check.py seed --db DB.json --images N [--hot H] --out SEED.json

``seed`` writes N images the pre-Ocata way (is_public) with members and
locations (half of them with Train's old ``backend`` key) into a database at
mitaka02, records the visibility each must end with, and picks H live ones
that every stand-in API node touches (``size = size + 1``, with --hot).

The `rolling` and `galera` checks (their files/*_check.py) import it for the
write logs of the stand-ins, the images their writes must have left, and the
difference from real Glance's schema.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import os
import sys

import pymysql
import sqlalchemy as sa

IMAGE = ("INSERT INTO images (id, name, size, status, is_public, created_at, deleted, "
         "min_disk, min_ram, protected) VALUES (%s, %s, 1024, 'active', %s, NOW(), %s, 0, 0, 0)")
MEMBER = ("INSERT INTO image_members (image_id, member, can_share, created_at, deleted, status) "
          "VALUES (%s, %s, 0, NOW(), %s, 'accepted')")
LOCATION = ("INSERT INTO image_locations (image_id, value, created_at, deleted, meta_data, status) "
            "VALUES (%s, %s, NOW(), 0, %s, 'active')")
CHUNK = 1000  # rows per seeding transaction: small write sets for a Galera cluster
SEED_SIZE = 1024


def load(path):
    with open(path) as handle:
        return json.load(handle)


def connect(db):
    conn = pymysql.connect(host=db["host"], port=int(db["port"]), user=db["user"],
                           password=db["password"], database=db["database"], autocommit=False)
    with conn.cursor() as cur:
        # On Galera, read only once this node has applied everything committed anywhere.
        cur.execute("SET SESSION wsrep_sync_wait = 1")
    return conn


def seed(args):
    expected = {}
    images, members, locations = [], [], []
    for n in range(args.images):
        kind = n % 5
        image_id = "00000000-0000-0000-0000-%012d" % n
        images.append((image_id, "seed-%d" % n, kind == 0, n % 7 == 0))
        if kind == 2:  # private with an active member: shared
            members.append((image_id, "tenant-a", False))
        if kind == 3:  # private whose only member was removed: private
            members.append((image_id, "tenant-b", True))
        if kind == 4:  # a removed and an active member: shared
            members += [(image_id, "tenant-c", True), (image_id, "tenant-d", False)]
        expected[image_id] = "public" if kind == 0 else "shared" if kind in (2, 4) else "private"
        key = "backend" if n % 2 else "store"
        locations.append((image_id, "file:///images/%d" % n, json.dumps({key: "fast"})))
    # Hot images: live ones, spread over the seed, so the data migration meets them too.
    live = [row[0] for row in images if not row[3]]
    hot = live[::max(1, len(live) // args.hot)][:args.hot] if args.hot else []
    conn = connect(load(args.db))
    try:
        with conn.cursor() as cur:
            for sql, rows in ((IMAGE, images), (MEMBER, members), (LOCATION, locations)):
                for start in range(0, len(rows), CHUNK):
                    cur.executemany(sql, rows[start:start + CHUNK])
                    conn.commit()
    finally:
        conn.close()
    with open(args.out, "w") as handle:
        json.dump({"visibility": expected, "locations": len(locations), "hot": hot}, handle)
    print(json.dumps({"images": len(images), "members": len(members),
                      "locations": len(locations), "hot": len(hot)}))


def read_logs(paths):
    """Every stand-in's write log, in time order."""
    entries = []
    for path in paths:
        with open(path) as handle:
            entries += [json.loads(line) for line in handle if line.strip()]
    return sorted(entries, key=lambda e: e["t"])


def load_schema_dump(path):
    spec = importlib.util.spec_from_file_location("schema_dump", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema_difference(schema_dump, db, golden_path, label):
    """A unified diff from real Glance's schema (the golden file) to the database's; '' when equal."""
    url = sa.engine.URL.create("mysql+pymysql", username=db["user"], password=db["password"],
                               host=db["host"], port=int(db["port"]), database=db["database"])
    ours = schema_dump.dump(url)
    theirs = load(golden_path)
    if ours == theirs:
        return ""
    return "".join(difflib.unified_diff(
        schema_dump.to_json(theirs).splitlines(True), schema_dump.to_json(ours).splitlines(True),
        "glance " + os.path.basename(golden_path), label, n=2))


def visibility_errors(visibility, final, seeded):
    """What ``visibility`` (image id -> visibility held) lacks or gets wrong.

    ``final`` maps each logged image to the visibility its last write says it
    must have, ``seeded`` each seeded one to its own.
    """
    missing = sorted(i for i in final if i not in visibility)
    wrong = sorted("%s: %s, expected %s" % (i, visibility[i], v) for i, v in final.items()
                   if i in visibility and visibility[i] != v)
    seed_wrong = sorted("%s: %s, expected %s" % (i, visibility.get(i), v)
                        for i, v in seeded.items() if visibility.get(i) != v)
    return missing, wrong, seed_wrong


def contract_timing(entries, last_old):
    """When a write first found is_public dropped, and whether that was after the old release's last write."""
    contract_seen = [e["t"] for e in entries if e["ok"] and not e["has_is_public"]]
    result = {"first_write_without_is_public": min(contract_seen) if contract_seen else None,
              "last_old_release_write": max(last_old) if last_old else None}
    result["contract_after_last_old_write"] = bool(
        contract_seen and last_old and min(contract_seen) > max(last_old))
    return result


def verify_arguments(doc, argv, db_action="store", db_help="connection settings (JSON)"):
    """A scenario check's arguments: its database (--db), the seed, real Glance's schema, the write logs."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--db", action=db_action, required=True, help=db_help)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--golden", required=True, help="real Glance's schema at the head (tests/parity/golden)")
    parser.add_argument("--schema-dump", required=True, help="tests/parity/schema_dump.py")
    parser.add_argument("logs", nargs="+", help="the stand-ins' writes.jsonl")
    return parser.parse_args(argv)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed")
    p.add_argument("--db", required=True)
    p.add_argument("--images", type=int, required=True)
    p.add_argument("--hot", type=int, default=0)
    p.add_argument("--out", required=True)
    seed(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
