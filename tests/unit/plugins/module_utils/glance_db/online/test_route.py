"""The online route's choice (online/__init__.py), and what it takes from Glance: no database."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import online, revisions
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.revisions import visibility

PACKAGE = Path(online.__file__).parent


@pytest.mark.parametrize("rebuilds,copyable,expected", [
    ([False], True, online.INSTANT),  # ADD COLUMN on a large table: metadata only
    ([False, False], False, online.INSTANT),
    ([True], False, online.IN_PLACE),  # MODIFY on a small table, or offline
    ([False, True], True, online.SHADOW_COPY),  # one rebuild takes the whole run into the copy
    ([True, True], True, online.SHADOW_COPY),
])
def test_route(rebuilds, copyable, expected):
    assert online.route(rebuilds, copyable) == expected


def test_only_sync_runs_offline():
    assert [p for p in ("sync", "expand", "migrate", "contract") if not online.runs_online(p)] == ["sync"]


def test_glances_triggers_reach_the_copy_from_the_revisions():
    """The carried triggers are declared by the revision that creates them; the copy
    builds each stand-in and Glance's own trigger from what it is given."""
    assert sorted(revisions.CARRIED_TRIGGERS) == sorted(visibility.TRIGGER_NAMES)
    create = revisions.CARRIED_TRIGGERS["insert_visibility"]
    assert create(table="images") == visibility.INSERT_TRIGGER
    assert create(table="_glance_new_images", name="_glance_carry_insert_visibility", stand_in=True) == (
        visibility.create_trigger("insert_visibility", table="_glance_new_images",
                                  name="_glance_carry_insert_visibility", stand_in=True))


def test_the_online_route_imports_nothing_of_glances_revisions():
    """Generic code: what it needs of Glance's revisions is passed in (runner.py)."""
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        assert not [name for name in imported if "revisions" in name], (path.name, imported)
