"""Compare a database with the schema real Glance 33.0.0 left at the same state."""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent.parent / "parity" / "golden"
sys.path.insert(0, str(GOLDEN.parent))

import schema_dump  # noqa: E402  (tests/parity, also used to make the golden files)

# The release states real glance-manage was walked through, in order.
RELEASE_STATES = (
    "liberty", "mitaka01", "mitaka02",
    "ocata_expand01", "ocata_contract01", "pike_expand01", "pike_contract01",
    "queens_expand01", "queens_contract01", "rocky_expand02", "rocky_contract02",
    "train_expand01", "train_contract01", "ussuri_expand01", "ussuri_contract01",
    "wallaby_expand01", "wallaby_contract01", "xena_expand01", "xena_contract01",
    "yoga_expand01", "yoga_contract01", "zed_expand01", "zed_contract01",
    "2023_1_expand01", "2023_1_contract01", "2024_1_expand01", "2024_1_contract01",
)


def golden(engine_name, state):
    return json.loads((GOLDEN / engine_name / ("%s.json" % state)).read_text())


def differences(engine, engine_name, state):
    """Unified diff between real Glance's dump and ours; empty when identical."""
    ours = schema_dump.dump(engine)
    theirs = golden(engine_name, state)
    if ours == theirs:
        return ""
    return "".join(difflib.unified_diff(
        schema_dump.to_json(theirs).splitlines(True), schema_dump.to_json(ours).splitlines(True),
        "glance-33.0.0/%s/%s" % (engine_name, state), "ours", n=3))
