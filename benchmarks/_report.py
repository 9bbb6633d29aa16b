"""Collect the benchmarks' JSON last lines into DIR/results.json and print a table.

    python benchmarks/_report.py DIR NAME...

Reads DIR/NAME.log (a benchmark's stdout). Exits 1 when one of them printed no
JSON last line (it failed to run); goals not met are shown, not fatal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def last_json(path):
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        return json.loads(lines[-1]), lines[:-1]
    except (OSError, IndexError, ValueError):
        return None, []


def comparison_rows(result):
    """Rows of (engine, ours, glance, ratio, goal, floor) for fresh_sync, check and noop_sync."""
    rows = []
    for engine, entry in sorted(result.get("engines", {}).items()):
        glance = entry.get("glance")
        floor = entry.get("floor")
        rows.append((
            engine,
            "%.3f" % entry["ours"]["median"],
            "%.3f" % glance["median"] if glance else "n/a",
            "x%.2f" % entry["ratio_ours_to_glance"] if "ratio_ours_to_glance" in entry else "",
            ("<= x%.2f %s" % (entry["goal_ratio"], "met" if entry["goal_met"] else "NOT met"))
            if "goal_met" in entry else "",
            "%.3f" % floor["median"] if floor else "",
        ))
    return rows


def table(header, rows):
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    fmt = "  ".join("%%-%ds" % w for w in widths)
    print(fmt % header)
    for row in rows:
        print(fmt % row)


def main(out, names):
    out = Path(out)
    results, missing = {}, []
    for name in names:
        result, before = last_json(out / ("%s.log" % name))
        if result is None:
            missing.append(name)
            continue
        results[name] = result
        print("\n== %s%s" % (name, " (smoke)" if result.get("smoke") else ""))
        if name in ("fresh_sync", "check", "noop_sync", "metadefs"):
            table(("engine", "ours s", "glance s", "ratio", "goal", "floor s"),
                  comparison_rows(result))
        elif before:
            print(before[-1])  # the benchmark's own one-line summary
    (out / "results.json").write_text(json.dumps(
        {"benchmarks": results, "failed": missing}, indent=2, sort_keys=True) + "\n")
    print("\nresults: %s" % (out / "results.json"))
    if missing:
        print("no result from: %s" % ", ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
