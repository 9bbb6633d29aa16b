"""The revision graph and what alembic_version rows mean (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import UnknownRevision
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import (
    CONTRACT, EXPAND, GRAPH,
)


def test_heads_are_the_branch_tips():
    """Each head is on its branch, every revision is its ancestor or the other branch's, none comes after it."""
    assert set(GRAPH.heads) == {EXPAND, CONTRACT}
    assert GRAPH.get(GRAPH.heads[EXPAND]).branch == EXPAND
    assert GRAPH.get(GRAPH.heads[CONTRACT]).branch == CONTRACT
    everything = GRAPH.ancestors(GRAPH.heads[EXPAND]) | GRAPH.ancestors(GRAPH.heads[CONTRACT])
    assert everything == set(GRAPH.by_id)
    assert GRAPH.order[-1].id == GRAPH.heads[CONTRACT]
    assert [r.id for r in GRAPH.order[:3]] == ["liberty", "mitaka01", "mitaka02"]
    # The newest release's contract needs its expand: one row once both are applied.
    assert GRAPH.rows_for(everything) == [GRAPH.heads[CONTRACT]]


def test_order_puts_each_revision_after_what_it_needs():
    seen = set()
    for revision in GRAPH.order:
        assert set(revision.parents) <= seen, revision.id
        seen.add(revision.id)
    assert seen == set(GRAPH.by_id)


def test_every_contract_depends_on_its_release_expand():
    for revision in GRAPH.order:
        if revision.branch == CONTRACT:
            depends_on, = revision.depends_on
            assert depends_on.replace("expand", "contract") == revision.id or \
                revision.id == "rocky_contract01" and depends_on == "rocky_expand01"


@pytest.mark.parametrize("applied_up_to,rows", [
    (["mitaka02"], ["mitaka02"]),
    (["ocata_expand01"], ["ocata_expand01"]),
    (["ocata_contract01", "pike_expand01"], ["ocata_contract01", "pike_expand01"]),
    (["queens_contract01", "rocky_expand02"], ["queens_contract01", "rocky_expand02"]),
    (["rocky_contract02"], ["rocky_contract02"]),
    (["EXPAND_HEAD"], ["EXPAND_HEAD"]),
    (["EXPAND_HEAD", "ocata_contract01"], ["EXPAND_HEAD", "ocata_contract01"]),
    (["CONTRACT_HEAD"], ["CONTRACT_HEAD"]),
])
def test_rows_are_what_alembic_leaves(applied_up_to, rows):
    heads = {"EXPAND_HEAD": GRAPH.heads[EXPAND], "CONTRACT_HEAD": GRAPH.heads[CONTRACT]}
    applied = set()
    for revision_id in applied_up_to:
        applied |= GRAPH.ancestors(heads.get(revision_id, revision_id))
    assert GRAPH.rows_for(applied) == [heads.get(r, r) for r in rows]


def test_legacy_rows_read_as_contract_revisions():
    assert GRAPH.rows_for(GRAPH.applied_from_rows(["ocata01"])) == ["ocata_contract01"]
    assert GRAPH.rows_for(GRAPH.applied_from_rows(["pike01"])) == ["pike_contract01"]


def test_unknown_revision_names_the_known_ones():
    with pytest.raises(UnknownRevision, match="Unknown revision 'victoria01'. Known revisions: liberty"):
        GRAPH.get("victoria01")


def test_golden_states_are_the_oldest_release_states():
    """The golden dumps cover the release states in order, from liberty, with no gap: a deleted dump
    would silently drop a state from the parity tests; a newer release may lack one (no oracle yet)."""
    golden = Path(__file__).resolve().parents[4] / "parity" / "golden" / "sqlite"  # tests/parity
    names = {p.stem for p in golden.glob("*.json")} - {"fresh_sync"}
    assert names, "no golden dump found in %s" % golden  # a wrong path would pass unseen
    states = [r.id for r in GRAPH.order if r.branch is None or _last_of_release(r)]
    assert names <= set(states)
    # What has no dump is newer than everything that has one.
    missing = set(states) - names
    assert not [n for n in names if missing & GRAPH.ancestors(n)], missing


def _last_of_release(revision):
    """The newest revision of its release on its branch (rocky_expand02, not rocky_expand01)."""
    return not any(r.release == revision.release and r.branch == revision.branch
                   and revision.id in GRAPH.ancestors(r.id) and r.id != revision.id for r in GRAPH.order)
