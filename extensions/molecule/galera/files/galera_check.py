"""Seed and check the database of the molecule `galera` scenario.

    galera_check.py seed   --db DB.json --images N --hot H --out SEED.json
    galera_check.py verify --seed SEED.json --golden GOLDEN.json
                           --schema-dump tests/parity/schema_dump.py
                           --db NODE1.json --db NODE2.json ... LOG...

``seed`` writes N images the pre-Ocata way (is_public) with members and
locations (half of them with Train's old ``backend`` key) into a database at
mitaka02 through one Galera node, records the visibility each must end with,
and picks H of them that every stand-in API node touches (``size = size + 1``).

``verify`` reads the write logs of the stand-in API nodes, then the database
through every Galera node given, and prints one JSON object: writes, raw 1213
errors and writes that failed after their retries, per API node and in all;
whether every node holds the same rows; which logged or seeded images are
missing or wrong; whether every touch of a hot image is in its size; whether
contract came after the last write of the old release; and, per Galera node,
the difference from real Glance's head schema.
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
CHUNK = 1000  # rows per seeding transaction: small write sets for the cluster
SEED_SIZE = 1024


def load(path):
    with open(path) as handle:
        return json.load(handle)


def connect(db):
    conn = pymysql.connect(host=db["host"], port=int(db["port"]), user=db["user"],
                           password=db["password"], database=db["database"], autocommit=False)
    with conn.cursor() as cur:
        # Read only once this node has applied everything committed anywhere.
        cur.execute("SET SESSION wsrep_sync_wait = 1")
    return conn


def seed(args, db):
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
    hot = live[::max(1, len(live) // args.hot)][:args.hot]
    conn = connect(db)
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


def schema_difference(schema_dump, db, theirs, label):
    url = sa.engine.URL.create("mysql+pymysql", username=db["user"], password=db["password"],
                               host=db["host"], port=int(db["port"]), database=db["database"])
    ours = schema_dump.dump(url)
    if ours == theirs:
        return ""
    return "".join(difflib.unified_diff(
        schema_dump.to_json(theirs).splitlines(True), schema_dump.to_json(ours).splitlines(True),
        "glance-33.0.0", label, n=2))


def writes_summary(entries):
    """Writes, raw 1213 errors and failures per API node, and in all."""
    nodes = {}
    for e in entries:
        node = nodes.setdefault(e["node"], {
            "writes": 0, "ok": 0, "failures": 0, "failed_after_retries": 0, "deadlocks": 0,
            "retried_writes": 0, "max_deadlocks_in_one_write": 0, "slowest_write_seconds": 0.0,
            "N-1": 0, "N": 0,
            "ops": {}, "deadlocks_by_op": {}, "servers": [], "last_old_write": None, "first_new_write": None, "errors": []})
        node["writes"] += 1
        node["deadlocks"] += e["deadlocks"]
        if e["deadlocks"]:
            node["deadlocks_by_op"][e["op"]] = node["deadlocks_by_op"].get(e["op"], 0) + e["deadlocks"]
        node["retried_writes"] += e["deadlocks"] > 0
        node["max_deadlocks_in_one_write"] = max(node["max_deadlocks_in_one_write"], e["deadlocks"])
        node["slowest_write_seconds"] = round(max(node["slowest_write_seconds"], e["t_done"] - e["t"]), 3)
        if not e["ok"]:
            node["failures"] += 1
            node["failed_after_retries"] += e["failed_after_retries"]
            if len(node["errors"]) < 5:
                node["errors"].append(e["error"])
            continue
        node["ok"] += 1
        node[e["release"]] += 1
        node["ops"][e["op"]] = node["ops"].get(e["op"], 0) + 1
        server = "%s:%s" % (e["server"]["name"], e["server"]["port"])
        if server not in node["servers"]:
            node["servers"].append(server)
        if e["release"] == "N-1":
            node["last_old_write"] = e["t_done"]
        elif node["first_new_write"] is None:
            node["first_new_write"] = e["t"]
    total = {key: sum(n[key] for n in nodes.values())
             for key in ("writes", "ok", "failures", "failed_after_retries", "deadlocks",
                         "retried_writes")}
    total["slowest_write_seconds"] = max([n["slowest_write_seconds"] for n in nodes.values()] or [0])
    return nodes, total


def read_node(db):
    """What one Galera node holds: images, counts, versions and its cluster view."""
    conn = connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, visibility, deleted, status, size FROM images")
            images = {r[0]: r[1:] for r in cur.fetchall()}
            counts = {}
            for table in ("images", "image_members", "image_properties", "image_locations"):
                cur.execute("SELECT COUNT(*), SUM(deleted) FROM %s" % table)
                total, deleted = cur.fetchone()
                counts[table] = [int(total), int(deleted or 0)]
            cur.execute("SELECT SUM(meta_data LIKE '%%\"backend\"%%') FROM image_locations")
            backend_keys = int(cur.fetchone()[0] or 0)
            cur.execute("SELECT version_num FROM alembic_version")
            versions = sorted(r[0] for r in cur.fetchall())
            cur.execute("SHOW STATUS LIKE 'wsrep_cluster_size'")
            size = cur.fetchone()
            cur.execute("SELECT @@wsrep_node_name, @@port")
            name, port = cur.fetchone()
    finally:
        conn.close()
    return {"images": images, "counts": counts, "backend_keys": backend_keys,
            "versions": versions, "cluster_size": int(size[1]) if size else None,
            "server": "%s:%s" % (name, port)}


def verify(args):
    entries = read_logs(args.logs)
    nodes, total = writes_summary(entries)
    final, destroyed, touches = {}, set(), {}
    for e in entries:
        if not e["ok"]:
            continue
        if e["op"] == "destroy":
            destroyed.add(e["id"])
            final.pop(e["id"], None)
        elif e["op"] == "touch":
            touches[e["id"]] = touches.get(e["id"], 0) + 1
        else:
            final[e["id"]] = e["expected"]
    contract_seen = [e["t"] for e in entries if e["ok"] and not e["has_is_public"]]
    last_old = [n["last_old_write"] for n in nodes.values() if n["last_old_write"]]
    seeded = load(args.seed)
    schema_dump = load_schema_dump(args.schema_dump)
    theirs = load(args.golden)

    galera, reference = {}, None
    for path in args.db:
        db = load(path)
        held = read_node(db)
        images = held["images"]
        if reference is None:
            reference = images
        missing = sorted(i for i in set(final) | destroyed if i not in images)
        wrong = sorted("%s: %s, expected %s" % (i, images[i][0], v) for i, v in final.items()
                       if i in images and images[i][0] != v)
        not_deleted = sorted(i for i in destroyed if i in images and images[i][1:3] != (1, "deleted"))
        seed_wrong = sorted("%s: %s, expected %s" % (i, images.get(i, (None,))[0], v)
                            for i, v in seeded["visibility"].items() if images.get(i, (None,))[0] != v)
        hot_wrong = []
        for i in seeded["hot"]:
            size = images[i][3] if i in images else None
            if size != SEED_SIZE + touches.get(i, 0):
                hot_wrong.append("%s: size %s, expected %d" % (i, size, SEED_SIZE + touches.get(i, 0)))
        galera[held["server"]] = {
            "cluster_size": held["cluster_size"],
            "counts": held["counts"],
            "same_rows_as_first_node": images == reference,
            "missing": missing[:20], "missing_count": len(missing),
            "wrong_visibility": wrong[:20], "wrong_count": len(wrong),
            "destroyed_not_deleted": not_deleted[:20],
            "seeded_wrong": seed_wrong[:20], "seeded_wrong_count": len(seed_wrong),
            "hot_wrong": hot_wrong,
            "locations": held["counts"]["image_locations"][0],
            "backend_keys_left": held["backend_keys"],
            "alembic_version": held["versions"],
            "schema_diff": schema_difference(schema_dump, db, theirs, held["server"]),
        }
    start = entries[0]["t"] if entries else 0
    result = dict(total)
    # Seconds from the first write: when each node came back as N, when contract ran.
    result["timeline"] = dict(
        [(name, {"last_old_write": round(n["last_old_write"] - start, 1) if n["last_old_write"] else None,
                 "first_new_write": round(n["first_new_write"] - start, 1) if n["first_new_write"] else None})
         for name, n in sorted(nodes.items())],
        first_write_without_is_public=round(min(contract_seen) - start, 1) if contract_seen else None,
        last_write=round(entries[-1]["t"] - start, 1) if entries else None)
    result.update({
        "nodes": nodes,
        "galera": galera,
        "images_logged": len(final) + len(destroyed),
        "destroyed": len(destroyed),
        "touches": sum(touches.values()),
        "seeded": len(seeded["visibility"]),
        "locations_expected": seeded["locations"],
        "first_write_without_is_public": min(contract_seen) if contract_seen else None,
        "last_old_release_write": max(last_old) if last_old else None,
        "contract_after_last_old_write": bool(
            contract_seen and last_old and min(contract_seen) > max(last_old)),
    })
    print(json.dumps(result, indent=1, sort_keys=True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed")
    p.add_argument("--db", required=True)
    p.add_argument("--images", type=int, required=True)
    p.add_argument("--hot", type=int, required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("verify")
    p.add_argument("--db", action="append", required=True, help="one per Galera node")
    p.add_argument("--seed", required=True)
    p.add_argument("--golden", required=True)
    p.add_argument("--schema-dump", required=True)
    p.add_argument("logs", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "seed":
        seed(args, load(args.db))
    else:
        verify(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
