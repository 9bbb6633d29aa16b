"""Check the database of the molecule `rolling` scenario.

    rolling_check.py --db DB.json --seed SEED.json --golden GOLDEN.json
                     --schema-dump tests/parity/schema_dump.py LOG...

It reads the write logs of the stand-in API nodes and the database (seeded by
../../shared/glance_check.py), and prints one JSON object: how many writes and
failures each node had, which logged images are missing or have another
visibility than expected, whether the seeded data came through, whether
contract came after the last write of the old release, and the difference
from real Glance's head schema.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
import glance_check as check  # noqa: E402  the scenarios' shared seed and checks


def verify(args):
    db = check.load(args.db)
    entries = check.read_logs(args.logs)
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

    conn = check.connect(db)
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
    seeded = check.load(args.seed)
    missing, wrong, seed_wrong = check.visibility_errors(actual, final, seeded["visibility"])
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
        "schema_diff": check.schema_difference(check.load_schema_dump(args.schema_dump), db, args.golden, "rolling"),
    }
    result.update(check.contract_timing(entries, [n["last_old_write"] for n in nodes.values() if n["last_old_write"]]))
    print(json.dumps(result, indent=1, sort_keys=True))


def main(argv=None):
    verify(check.verify_arguments(__doc__, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
