"""Compare a database with the schema real Glance 33.0.0 left at the same state."""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent.parent / "parity" / "golden"
sys.path.insert(0, str(GOLDEN.parent))

import schema_dump  # noqa: E402  (tests/parity, also used to make the golden files)

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import (  # noqa: E402
    CONTRACT, GRAPH,
)

# The contract head: where a sync, a finished rolling upgrade or glance-manage leaves a database.
HEAD = GRAPH.heads[CONTRACT]
_POSITION = dict((revision.id, index) for index, revision in enumerate(GRAPH.order))
# Dumps of real Glance that are not release states.
_NOT_STATES = {"fresh_sync", "online_expand_from_mitaka02"}


def _release_walk_key(revision_id):
    """Release by release, expand before contract: the order make_golden.sh walked
    real Glance in (Alembic's own order would give every expand before any contract)."""
    revision = GRAPH.get(revision_id)
    releases = []
    for each in GRAPH.order:
        if each.release not in releases:
            releases.append(each.release)
    return (releases.index(revision.release), revision.branch == CONTRACT, _POSITION[revision_id])


def _golden_states():
    """The release states real glance-manage was walked through (golden/sqlite's listing), in that order."""
    names = {path.stem for path in (GOLDEN / "sqlite").glob("*.json")} - _NOT_STATES
    return tuple(sorted(names, key=_release_walk_key))


RELEASE_STATES = _golden_states()


def golden(engine_name, state):
    path = GOLDEN / engine_name / ("%s.json" % state)
    if not path.exists() and state in _POSITION and state not in RELEASE_STATES:
        # A release newer than the oracle's Glance: nothing to compare with yet.
        pytest.skip("no golden dump of %s (newer than the oracle's Glance): run tests/parity/make_golden.sh"
                    % state)
    return json.loads(path.read_text())


def differences(engine, engine_name, state):
    """Unified diff between real Glance's dump and ours; empty when identical."""
    ours = schema_dump.dump(engine)
    theirs = golden(engine_name, state)
    if ours == theirs:
        return ""
    return "".join(difflib.unified_diff(
        schema_dump.to_json(theirs).splitlines(True), schema_dump.to_json(ours).splitlines(True),
        "glance-33.0.0/%s/%s" % (engine_name, state), "ours", n=3))
