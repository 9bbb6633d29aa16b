"""The revision graph and what alembic_version rows mean (no database needed)."""

from __future__ import annotations

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import UnknownRevision
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import (
    CONTRACT, EXPAND, GRAPH,
)


def test_heads_and_size():
    assert GRAPH.heads == {EXPAND: "2024_1_expand01", CONTRACT: "2024_1_contract01"}
    assert len(GRAPH.order) == 29
    assert [r.id for r in GRAPH.order[:3]] == ["liberty", "mitaka01", "mitaka02"]


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
    (["2024_1_expand01"], ["2024_1_expand01"]),
    (["2024_1_expand01", "ocata_contract01"], ["2024_1_expand01", "ocata_contract01"]),
    (["2024_1_contract01"], ["2024_1_contract01"]),
])
def test_rows_are_what_alembic_leaves(applied_up_to, rows):
    applied = set()
    for revision_id in applied_up_to:
        applied |= GRAPH.ancestors(revision_id)
    assert GRAPH.rows_for(applied) == rows


def test_legacy_rows_read_as_contract_revisions():
    assert GRAPH.rows_for(GRAPH.applied_from_rows(["ocata01"])) == ["ocata_contract01"]
    assert GRAPH.rows_for(GRAPH.applied_from_rows(["pike01"])) == ["pike_contract01"]


def test_unknown_revision_names_the_known_ones():
    with pytest.raises(UnknownRevision, match="Unknown revision 'victoria01'. Known revisions: liberty"):
        GRAPH.get("victoria01")
