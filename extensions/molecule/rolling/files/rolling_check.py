"""Seed and check the database of the molecule `rolling` scenario.

    rolling_check.py seed   --db DB.json --out SEED.json
    rolling_check.py verify --db DB.json --seed SEED.json --golden GOLDEN.json
                            --schema-dump tests/parity/schema_dump.py LOG...

``seed`` writes images the pre-Ocata way (is_public) with members and
locations (half of them with Train's old ``backend`` key) into a database at
mitaka02, and records the visibility each must end with.

``verify`` reads the write logs of the stand-in API nodes and the database,
and prints one JSON object: how many writes and failures each node had, which
logged images are missing or have another visibility than expected, whether
the seeded data came through, whether contract came after the last write of
the old release, and the difference from real Glance's head schema.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import sys

import pymysql
import sqlalchemy as sa

IMAGE = ("INSERT INTO images (id, name, size, status, is_public, created_at, deleted, "
         "min_disk, min_ram, protected) VALUES (%s, %s, 1024, 'active', %s, NOW(), %s, 0, 0, 0)")
MEMBER = ("INSERT INTO image_members (image_id, member, can_share, created_at, deleted, status) "
          "VALUES (%s, %s, 0, NOW(), %s, 'accepted')")
LOCATION = ("INSERT INTO image_locations (image_id, value, created_at, deleted, meta_data, status) "
            "VALUES (%s, %s, NOW(), 0, %s, 'active')")
SEEDED = 60


def connect(db):
    return pymysql.connect(host="127.0.0.1", port=int(db["port"]), user=db["user"],
                           password=db["password"], database=db["database"], autocommit=False)


def seed(args, db):
    expected = {}
    images, members, locations = [], [], []
    for n in range(SEEDED):
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
    conn = connect(db)
    try:
        with conn.cursor() as cur:
            cur.executemany(IMAGE, images)
            cur.executemany(MEMBER, members)
            cur.executemany(LOCATION, locations)
        conn.commit()
    finally:
        conn.close()
    with open(args.out, "w") as handle:
        json.dump({"visibility": expected, "locations": len(locations)}, handle)
    print(json.dumps({"images": len(images), "members": len(members), "locations": len(locations)}))


def read_logs(paths):
    entries = []
    for path in paths:
        with open(path) as handle:
            entries += [json.loads(line) for line in handle if line.strip()]
    return sorted(entries, key=lambda e: e["t"])


def schema_difference(url, golden_path, schema_dump_path):
    spec = importlib.util.spec_from_file_location("schema_dump", schema_dump_path)
    schema_dump = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(schema_dump)
    ours = schema_dump.dump(url)
    with open(golden_path) as handle:
        theirs = json.load(handle)
    if ours == theirs:
        return ""
    return "".join(difflib.unified_diff(
        schema_dump.to_json(theirs).splitlines(True), schema_dump.to_json(ours).splitlines(True),
        "glance-33.0.0", "rolling", n=2))


def verify(args, db):
    entries = read_logs(args.logs)
    nodes = {}
    final = {}  # image id -> visibility its last successful write says it must have
    for e in entries:
        node = nodes.setdefault(e["node"], {"writes": 0, "failures": 0, "N-1": 0, "N": 0,
                                            "updates": 0, "last_old_write": None})
        node["writes"] += 1
        if not e["ok"]:
            node["failures"] += 1
            continue
        node[e["release"]] += 1
        node["updates"] += e["op"] == "update"
        if e["release"] == "N-1":
            node["last_old_write"] = e["t"]
        final[e["id"]] = e["expected"]
    contract_seen = [e["t"] for e in entries if e["ok"] and not e["has_is_public"]]
    last_old = [n["last_old_write"] for n in nodes.values() if n["last_old_write"]]

    conn = connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, visibility FROM images")
            actual = dict(cur.fetchall())
            cur.execute("SELECT COUNT(*), SUM(meta_data LIKE '%%\"backend\"%%') FROM image_locations")
            locations, backend_keys = cur.fetchone()
            cur.execute("SELECT version_num FROM alembic_version")
            versions = sorted(r[0] for r in cur.fetchall())
    finally:
        conn.close()
    with open(args.seed) as handle:
        seeded = json.load(handle)

    url = sa.engine.URL.create("mysql+pymysql", username=db["user"], password=db["password"],
                               host="127.0.0.1", port=int(db["port"]), database=db["database"])
    missing = sorted(i for i in final if i not in actual)
    wrong = sorted("%s: %s, expected %s" % (i, actual[i], v) for i, v in final.items()
                   if i in actual and actual[i] != v)
    seed_wrong = sorted("%s: %s, expected %s" % (i, actual.get(i), v)
                        for i, v in seeded["visibility"].items() if actual.get(i) != v)
    result = {
        "writes": sum(n["writes"] for n in nodes.values()),
        "failures": sum(n["failures"] for n in nodes.values()),
        "nodes": nodes,
        "images_logged": len(final),
        "missing": missing[:20],
        "missing_count": len(missing),
        "wrong_visibility": wrong[:20],
        "wrong_count": len(wrong),
        "seeded_wrong": seed_wrong[:20],
        "locations": int(locations),
        "locations_expected": seeded["locations"],
        "backend_keys_left": int(backend_keys or 0),
        "alembic_version": versions,
        "first_write_without_is_public": min(contract_seen) if contract_seen else None,
        "last_old_release_write": max(last_old) if last_old else None,
        "schema_diff": schema_difference(url, args.golden, args.schema_dump),
    }
    result["contract_after_last_old_write"] = bool(
        contract_seen and last_old and min(contract_seen) > max(last_old))
    print(json.dumps(result, indent=1, sort_keys=True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed")
    p.add_argument("--db", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("verify")
    p.add_argument("--db", required=True)
    p.add_argument("--seed", required=True)
    p.add_argument("--golden", required=True)
    p.add_argument("--schema-dump", required=True)
    p.add_argument("logs", nargs="+")
    args = parser.parse_args(argv)
    with open(args.db) as handle:
        db = json.load(handle)
    (seed if args.command == "seed" else verify)(args, db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
