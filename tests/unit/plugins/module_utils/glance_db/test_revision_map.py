"""graph.py against Alembic's RevisionMap, and its refusal of malformed trees (no database)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
from alembic.script.revision import Revision, RevisionMap

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import errors
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import RevisionGraphError
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import (
    BRANCHES, CONTRACT, EXPAND, GRAPH, RevisionGraph,
)

from pathlib import Path

# The directory holding the ansible_collections/ this session imports the collection from
# (tests/conftest.py's link, or ansible-test's tree): <root>/ansible_collections/openstack_ops/glance/...
COLLECTIONS_ROOT = str(Path(errors.__file__).parents[6])


def _alembic_map(scripts):
    return RevisionMap(lambda: [Revision(s.revision, s.down_revision, s.depends_on, s.branch_labels)
                                for s in scripts])


ALEMBIC = _alembic_map(GRAPH.scripts)
ALEMBIC_ANCESTORS = dict((r.revision, set(a.revision for a in ALEMBIC.iterate_revisions(r.revision, "base")))
                         for r in ALEMBIC.iterate_revisions("heads", "base"))


def test_ancestors_are_alembics():
    assert set(ALEMBIC_ANCESTORS) == set(GRAPH.by_id)
    for revision_id, walked in ALEMBIC_ANCESTORS.items():
        assert GRAPH.ancestors(revision_id) == walked, revision_id


def test_heads_and_order_are_alembics():
    assert GRAPH.heads == dict((branch, ALEMBIC.get_current_head(branch)) for branch in BRANCHES)
    assert set(ALEMBIC.heads) == set(GRAPH.heads.values())
    assert len(GRAPH.order) == len(GRAPH.scripts)
    seen = set()
    for revision in GRAPH.order:
        assert set(revision.parents) <= seen, revision.id
        seen.add(revision.id)


def test_rows_are_the_heads_alembic_leaves_in_every_state():
    """For each (expand side, contract side) reachable pair: alembic_version's rows."""
    expand_side = [r.id for r in GRAPH.order if r.branch != CONTRACT]
    contract_side = [None] + [r.id for r in GRAPH.order if r.branch == CONTRACT]
    states = 0
    for e in expand_side:
        for c in contract_side:
            applied = set(GRAPH.ancestors(e)) | (GRAPH.ancestors(c) if c else set())
            # Alembic keeps a row for each applied revision no other applied one needs
            # (through down_revision or depends_on).
            needed = set().union(*[ALEMBIC_ANCESTORS[r] - {r} for r in applied])
            assert GRAPH.rows_for(applied) == sorted(applied - needed), (e, c)
            assert GRAPH.applied_from_rows(GRAPH.rows_for(applied)) == applied
            states += 1
    assert states == len(expand_side) * len(contract_side)


def _script(revision, down=None, depends_on=None, labels=None):
    return SimpleNamespace(revision=revision, down_revision=down, depends_on=depends_on,
                           branch_labels=labels)


def _tree(*extra):
    return [_script("root"), _script("e1", "root", labels=(EXPAND,)),
            _script("c1", "root", "e1", labels=(CONTRACT,)),
            _script("e2", "e1"), _script("c2", "c1", "e2")] + list(extra)


def test_a_small_tree_plans_through_alembic():
    graph = RevisionGraph(_tree())
    assert graph.heads == {EXPAND: "e2", CONTRACT: "c2"}
    assert [r.id for r in graph.order] == ["root", "e1", "e2", "c1", "c2"]
    assert [r.id for r in graph.pending(graph.ancestors("e1"), graph.ancestors("c2"))] == ["e2", "c1", "c2"]


def test_several_parents_are_followed():
    # A merge (tuple down_revision) and a contract needing two expands.
    graph = RevisionGraph(_tree(_script("e3", "e2"), _script("x", "e2"), _script("e4", ("e3", "x")),
                                _script("c3", "c2", ("e3", "e4"))))
    assert graph.heads == {EXPAND: "e4", CONTRACT: "c3"}
    assert graph.ancestors("c3") == {"root", "e1", "e2", "e3", "x", "e4", "c1", "c2", "c3"}
    assert graph.rows_for(graph.ancestors("e4") | graph.ancestors("c1")) == ["c1", "e4"]
    assert [r.id for r in graph.order] == [r.revision for r in reversed(list(
        graph.revision_map.iterate_revisions("heads", "base")))]


def test_a_second_head_on_a_branch_is_refused():
    with pytest.raises(RevisionGraphError, match=r"The expand branch has 2 heads: e2, e2b\."):
        RevisionGraph(_tree(_script("e2b", "e1")))
    with pytest.raises(RevisionGraphError, match=r"The contract branch has 2 heads: c2, c2b\."):
        RevisionGraph(_tree(_script("c2b", "c1", "e2")))


def test_a_head_off_both_branches_is_refused():
    with pytest.raises(RevisionGraphError, match="Revision.s. stray end neither"):
        RevisionGraph(_tree(_script("stray", "root")))


def test_a_missing_parent_or_cycle_is_refused():
    with pytest.raises(RevisionGraphError, match="e3 names nowhere, which no revision file declares"):
        RevisionGraph(_tree(_script("e3", "nowhere")))
    with pytest.raises(RevisionGraphError, match="cycle"):
        RevisionGraph([_script("a", "b"), _script("b", "a")])
    with pytest.raises(RevisionGraphError, match="Two revision files declare revision e1"):
        RevisionGraph(_tree(_script("e1", "e2")))


def test_alembic_disagreeing_is_refused():
    graph = RevisionGraph(_tree())
    graph.heads = {EXPAND: "e1", CONTRACT: "c2"}  # as if the plain reading had gone wrong
    with pytest.raises(RevisionGraphError, match="Alembic finds heads"):
        graph.pending(set(), graph.ancestors("e1"))  # builds the RevisionMap, which checks the heads


def test_facts_and_nothing_to_do_import_neither_alembic_nor_sqlalchemy():
    """The plain reading serves facts and a settled phase; RevisionMap is built only to plan work."""
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
        from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import GRAPH
        from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.state import DatabaseState
        at_head = GRAPH.rows_for(GRAPH.ancestors(GRAPH.heads["expand"]) | GRAPH.ancestors(GRAPH.heads["contract"]))
        state = DatabaseState("sqlite", "3", "x", ["images"], at_head)
        assert state.as_facts()["up_to_date"]
        assert DatabaseState("sqlite", "3", "x", ["images"], ["mitaka02"]).as_facts()["next_step"] == "expand"
        for phase in ("sync", "expand", "migrate", "contract"):
            assert phases.settled(state, phase) is not None, phase
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "sqlalchemy")))
        GRAPH.pending(set(), GRAPH.ancestors(GRAPH.heads["expand"]))
        print("alembic" in sys.modules)
    """ % COLLECTIONS_ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "True"]
