"""Every module is where docs/adding-a-module.md says it must be: in the action group when it
takes the connection options, in the README's table, and in an integration target or listed
below with the reason it has none (no Ansible run, no database)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
FRAGMENT = "openstack_ops.glance.glance_db"  # the connection options' doc fragment
TARGETS = REPO / "tests" / "integration" / "targets"

# Modules tested in a target named for something other than themselves.
SHARED_TARGETS = {
    # A phase only makes sense after the one before it: one target runs the whole cycle.
    "glance_db_expand": "test_glance_db_phases",
    "glance_db_migrate": "test_glance_db_phases",
    "glance_db_contract": "test_glance_db_phases",
}

# Modules with no integration target: where they are tested instead, and why there.
NO_TARGET = {
    "glance_db_restore": (
        "tests/functional/test_restore.py",
        "its proof is a round trip (backup, writes, upgrade, restore) read back by real glance-manage "
        "on every engine, with the dump clients of tests/functional/test_backup.py"),
    "glance_db_grants": (
        "tests/functional/test_grants.py",
        "it needs a MariaDB with binary logging and an admin account (scripts/private-mariadb); "
        "ansible-test's targets share the server on 3306, which has neither"),
    "glance_db_haproxy": (
        "extensions/molecule/haproxy",
        "it needs a running HAProxy: the molecule scenario drives it through the role during a rolling "
        "upgrade, tests/functional/test_haproxy.py its client in the cases the scenario does not reach"),
    "glance_db_wait": (
        "tests/functional/test_progress.py",
        "it waits for an async job and prints its progress: the test runs the role's expand on 100,000 images "
        "and reads the lines it printed, a size ansible-test's shared targets do not seed"),
    "glance_db_node_release": (
        "extensions/molecule/guard",
        "it runs on API nodes without a database: the guard scenario asks stand-in nodes through the role, "
        "tests/unit/plugins/module_utils/glance_db/test_releases.py reads versions and release names"),
}


def _documentation(module):
    """The module's DOCUMENTATION, read without importing the module."""
    tree = ast.parse((REPO / "plugins" / "modules" / (module + ".py")).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["DOCUMENTATION"]:
            return yaml.safe_load(node.value.value)
    raise AssertionError("%s has no DOCUMENTATION" % module)


def _action_group():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    return runtime["action_groups"]["glance_db"]


def _readme_table():
    """The first column of the README's table under '## Modules'."""
    text = (REPO / "README.md").read_text()
    section = re.search(r"^## Modules\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README.md has no '## Modules' section"
    return re.findall(r"^\| `(glance_db_\w+)` \|", section.group(1), re.M)


def test_the_modules_are_found():
    assert "glance_db_sync" in MODULES, "no module found in %s: every check below would pass unseen" % REPO


def test_action_group_holds_every_module_with_the_connection_options():
    takes_connection = [m for m in MODULES if FRAGMENT in _documentation(m).get("extends_documentation_fragment", [])]
    group = _action_group()
    assert sorted(group) == sorted(set(group)), "meta/runtime.yml names a module twice: %s" % group
    missing = sorted(set(takes_connection) - set(group))
    assert not missing, ("%s use the %s doc fragment but are not in meta/runtime.yml's action group glance_db: "
                         "add them there (docs/adding-a-module.md)" % (missing, FRAGMENT))
    extra = sorted(set(group) - set(takes_connection))
    assert not extra, ("meta/runtime.yml's action group glance_db lists %s, which take no connection options "
                       "(or do not exist): module_defaults would hand them options they refuse" % extra)


def test_the_modules_without_a_connection_stay_out_of_the_group():
    assert not {"glance_db_haproxy", "glance_db_node_release"} & set(_action_group())


def test_readme_table_lists_every_module_once():
    rows = _readme_table()
    assert sorted(rows) == sorted(set(rows)), "README.md's module table names a module twice: %s" % rows
    missing = sorted(set(MODULES) - set(rows))
    assert not missing, "README.md's module table has no line for %s (docs/adding-a-module.md)" % missing
    extra = sorted(set(rows) - set(MODULES))
    assert not extra, "README.md's module table lists %s, which are not in plugins/modules" % extra


@pytest.mark.parametrize("module", [m for m in MODULES if m not in NO_TARGET])
def test_module_has_an_integration_target(module):
    target = TARGETS / SHARED_TARGETS.get(module, "test_" + module)
    assert (target / "aliases").is_file(), (
        "%s has no integration target: add tests/integration/targets/test_%s (aliases, meta/main.yml, tasks/main.yml), "
        "or list it in NO_TARGET of %s with the reason (docs/adding-a-module.md)"
        % (module, module, Path(__file__).relative_to(REPO)))
    tasks = "".join(p.read_text() for p in sorted((target / "tasks").glob("*.yml")))
    assert "openstack_ops.glance.%s:" % module in tasks, "%s never calls %s" % (target.relative_to(REPO), module)


@pytest.mark.parametrize("module", sorted(NO_TARGET))
def test_exception_is_real_and_tested_elsewhere(module):
    where = NO_TARGET[module][0]
    assert module in MODULES, "NO_TARGET names %s, which is not in plugins/modules: remove it" % module
    assert not (TARGETS / ("test_" + module)).exists(), (
        "%s has an integration target now: remove it from NO_TARGET" % module)
    assert (REPO / where).exists(), "%s's tests are said to be in %s, which does not exist" % (module, where)


def test_shared_targets_name_real_modules():
    assert set(SHARED_TARGETS) <= set(MODULES), sorted(set(SHARED_TARGETS) - set(MODULES))
    assert not set(SHARED_TARGETS) & set(NO_TARGET)
