"""The run options: every default written once in Python, and the docs agreeing with it.

options.OPTIONS holds each default; the modules' argument specs take theirs from it, and
their documentation (module DOCUMENTATION and the doc fragments it extends) repeats it,
as validate-modules requires.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.openstack_ops.glance.plugins.doc_fragments.glance_db import ModuleDocFragment
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import options
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import GlanceDbModule

ROOT = Path(__file__).resolve().parents[5]


def _module_class(name):
    module = importlib.import_module("ansible_collections.openstack_ops.glance.plugins.modules." + name)
    found = [value for value in vars(module).values()
             if isinstance(value, type) and issubclass(value, GlanceDbModule) and value is not GlanceDbModule]
    return module, (found[0] if found else None)


# The modules built on GlanceDbModule (glance_db_haproxy and glance_db_node_release take no
# connection and are not).
MODULES = [path.stem for path in sorted((ROOT / "plugins" / "modules").glob("glance_db_*.py"))
           if _module_class(path.stem)[1] is not None]


def test_the_modules_on_the_base_class_are_found():
    assert len(MODULES) >= 10 and "glance_db_sync" in MODULES and "glance_db_haproxy" not in MODULES


def _documented_options(module):
    doc = yaml.safe_load(module.DOCUMENTATION)
    documented = {}
    for fragment in doc.get("extends_documentation_fragment", []):
        attribute = fragment.rsplit(".", 1)[-1] if fragment.count(".") == 3 else "DOCUMENTATION"
        documented.update(yaml.safe_load(getattr(ModuleDocFragment, attribute)).get("options") or {})
    documented.update(doc.get("options") or {})
    return documented


@pytest.mark.parametrize("name", MODULES)
def test_each_documented_default_is_the_python_default(name):
    module, cls = _module_class(name)
    spec = cls.full_argument_spec()
    documented = _documented_options(module)
    assert set(documented) == set(spec)
    for option, entry in spec.items():
        assert documented[option].get("default") == entry.get("default"), option
    for option in cls.run_options:
        assert spec[option].get("default") == options.default(option), option


@pytest.mark.parametrize("name", MODULES)
def test_no_module_writes_a_run_option_of_its_own(name):
    _module, cls = _module_class(name)
    assert not set(cls.argument_spec) & set(cls.run_options)


def _python_code(path):
    """The file's code, without the modules' documentation strings."""
    text = path.read_text()
    return re.sub(r'^(DOCUMENTATION|EXAMPLES|RETURN) = r?""".*?"""', "", text, flags=re.M | re.S)


def test_each_default_is_written_once_in_python():
    code = dict((path, _python_code(path)) for path in (ROOT / "plugins").rglob("*.py")
                if "doc_fragments" not in path.parts)
    for name, (_kind, value) in options.OPTIONS.items():
        if value is None:
            continue
        literal = "[\"']%s[\"']" % re.escape(value) if isinstance(value, str) else r"\b%s\b" % value
        # name=VALUE, "name": VALUE, NAME = VALUE, name=dict(..., default=VALUE), name=("int", VALUE)
        pattern = re.compile(r"%s[\"']?\s*[=:]\s*(dict\([^)]*default=|\(\"\w+\", )?%s" % (name, literal), re.I)
        found = [str(path.relative_to(ROOT)) for path, text in code.items() for _match in pattern.finditer(text)]
        assert found == ["plugins/module_utils/glance_db/options.py"], (name, found)


def test_the_old_scattered_names_are_gone():
    from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (
        lock, module, phases, state)
    assert not hasattr(module, "WRITE_ARGUMENT_SPEC")
    assert not hasattr(GlanceDbModule, "writes")
    assert not hasattr(phases, "DEFAULT_BATCH_SIZE")
    assert not hasattr(lock, "DEFAULT_LEASE_SECONDS") and not hasattr(lock, "DEFAULT_LOCK_DATABASE")
    assert not hasattr(state, "on_galera")
    assert not hasattr(ModuleDocFragment, "WRITE")
