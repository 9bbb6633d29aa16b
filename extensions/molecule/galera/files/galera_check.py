"""Check the database of the molecule `galera` scenario through every Galera node.

    galera_check.py --seed SEED.json --golden GOLDEN.json
                    --schema-dump tests/parity/schema_dump.py
                    --db NODE1.json --db NODE2.json ... LOG...

It reads the write logs of the stand-in API nodes, then the database (seeded
by ../../shared/glance_check.py) through every Galera node given, and prints
one JSON object: writes, raw 1213 errors and writes that failed after their
retries, per API node and in all; whether every node holds the same rows;
which logged or seeded images are missing or wrong; whether every touch of a
hot image is in its size; whether contract came after the last write of the
old release; and, per Galera node, the difference from real Glance's head
schema.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
import glance_check as check  # noqa: E402  the scenarios' shared seed and checks


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
    conn = check.connect(db)
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
    entries = check.read_logs(args.logs)
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
    timing = check.contract_timing(entries, [n["last_old_write"] for n in nodes.values() if n["last_old_write"]])
    seeded = check.load(args.seed)
    schema_dump = check.load_schema_dump(args.schema_dump)

    galera, reference = {}, None
    for path in args.db:
        db = check.load(path)
        held = read_node(db)
        images = held["images"]
        if reference is None:
            reference = images
        missing, wrong, seed_wrong = check.visibility_errors(
            dict((i, row[0]) for i, row in images.items()), final, seeded["visibility"])
        missing = sorted(set(missing) | set(i for i in destroyed if i not in images))
        not_deleted = sorted(i for i in destroyed if i in images and images[i][1:3] != (1, "deleted"))
        hot_wrong = []
        for i in seeded["hot"]:
            size = images[i][3] if i in images else None
            if size != check.SEED_SIZE + touches.get(i, 0):
                hot_wrong.append("%s: size %s, expected %d" % (i, size, check.SEED_SIZE + touches.get(i, 0)))
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
            "schema_diff": check.schema_difference(schema_dump, db, args.golden, held["server"]),
        }
    start = entries[0]["t"] if entries else 0
    result = dict(total)
    # Seconds from the first write: when each node came back as N, when contract ran.
    result["timeline"] = dict(
        [(name, {"last_old_write": round(n["last_old_write"] - start, 1) if n["last_old_write"] else None,
                 "first_new_write": round(n["first_new_write"] - start, 1) if n["first_new_write"] else None})
         for name, n in sorted(nodes.items())],
        first_write_without_is_public=(round(timing["first_write_without_is_public"] - start, 1)
                                       if timing["first_write_without_is_public"] else None),
        last_write=round(entries[-1]["t"] - start, 1) if entries else None)
    result.update({
        "nodes": nodes,
        "galera": galera,
        "images_logged": len(final) + len(destroyed),
        "destroyed": len(destroyed),
        "touches": sum(touches.values()),
        "seeded": len(seeded["visibility"]),
        "locations_expected": seeded["locations"],
    })
    result.update(timing)
    print(json.dumps(result, indent=1, sort_keys=True))


def main(argv=None):
    verify(check.verify_arguments(__doc__, argv, "append", "one per Galera node"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
