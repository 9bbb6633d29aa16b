"""A new Glance release is new files: add a throwaway one to a copy of the tree and run the suite there.

The copy gets exactly what docs/adding-a-release.md lists (two revision files,
their lines in revisions/__init__.py; no data migration, no golden dumps), then
its own tests run over it: the graph and heads, the walk on SQLite (each
revision's effect, expand adds only, contract drops only), the planners and the
phase order, and the modules and the role through Ansible, so the payload ships
the new files. Parity is skipped for the new states alone (no golden). Anything
else the copy would need is a leak in the design, to be fixed in the real tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import (
    CONTRACT, EXPAND, GRAPH,
)

REPO = Path(__file__).resolve().parents[2]
REVISIONS_INIT = REPO / "plugins" / "module_utils" / "glance_db" / "revisions" / "__init__.py"
NEW_EXPAND, NEW_CONTRACT = "2099_1_expand01", "2099_1_contract01"

EXPAND_FILE = '''\
# -*- coding: utf-8 -*-
"""Throwaway release: add a nullable note to image_tags."""

from __future__ import annotations

from ..deps import op, sa

revision = "{new}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("image_tags", sa.Column("note", sa.String(255), nullable=True))
'''

CONTRACT_FILE = '''\
# -*- coding: utf-8 -*-
"""Throwaway release: empty contract."""

from __future__ import annotations

revision = "{new}"
down_revision = "{down}"
branch_labels = None
depends_on = "{expand}"


def upgrade():
    pass
'''

PLAYBOOK = '''\
- name: Sync and read a database of the copy through Ansible
  hosts: localhost
  gather_facts: false
  vars:
    glance_db_connection: "sqlite:///{db}"
  tasks:
    - name: Sync
      openstack_ops.glance.glance_db_sync:
        connection: "{{{{ glance_db_connection }}}}"
      register: synced
    - name: Facts through the role
      ansible.builtin.include_role:
        name: openstack_ops.glance.glance_db
        tasks_from: facts
        public: true
    - name: Record what the modules and the role saw
      ansible.builtin.copy:
        content: "{{{{ {{'synced': synced.revisions_applied, 'facts': glance_db_state}} | to_json }}}}"
        dest: "{out}"
        mode: "0600"
'''


def _status():
    return subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"],
                          check=True, capture_output=True, text=True).stdout


def _copy_tree(dest):
    """The files git sees (tracked, and untracked but not ignored), as they are on disk."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], check=True, capture_output=True).stdout
    for name in sorted(set(listed.decode().split("\0")) - {""}):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _add_release(copy):
    """docs/adding-a-release.md, steps 1 and 2 (this release has no data migration; no golden yet)."""
    revisions = copy / "plugins" / "module_utils" / "glance_db" / "revisions"
    (revisions / ("rev_%s.py" % NEW_EXPAND)).write_text(
        EXPAND_FILE.format(new=NEW_EXPAND, down=GRAPH.heads[EXPAND]))
    (revisions / ("rev_%s.py" % NEW_CONTRACT)).write_text(
        CONTRACT_FILE.format(new=NEW_CONTRACT, down=GRAPH.heads[CONTRACT], expand=NEW_EXPAND))
    init = revisions / "__init__.py"
    text = init.read_text()
    last = "    rev_%s,\n)\n" % GRAPH.heads[CONTRACT]
    assert last in text, "revisions/__init__.py no longer ends its import list as the doc says"
    init.write_text(text.replace(last, "    rev_%s,\n    rev_%s,\n    rev_%s,\n)\n"
                                 % (GRAPH.heads[CONTRACT], NEW_EXPAND, NEW_CONTRACT)))


def _env():
    env = dict(os.environ)
    for name in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_a_new_release_is_new_files(tmp_path):
    before, init_before = _status(), REVISIONS_INIT.read_bytes()
    copy = tmp_path / "tree"
    _copy_tree(copy)
    _add_release(copy)
    env = _env()

    # The copy's own graph: new heads, the new release, the rows, nothing else to edit.
    probe = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import json, sys
        sys.path.insert(0, "tests")
        import conftest  # the copy's collection link
        from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import graph
        assert graph.__file__.startswith(%r), graph.__file__
        order = [r.id for r in graph.GRAPH.order]
        print(json.dumps({"heads": graph.GRAPH.heads, "last": order[-1], "n": len(order),
                          "expand_first": order.index(%r) < order.index(%r),
                          "release": graph.GRAPH.get(%r).release}))
        """ % (str(copy), NEW_EXPAND, NEW_CONTRACT, NEW_CONTRACT))], cwd=copy, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert seen == {"heads": {EXPAND: NEW_EXPAND, CONTRACT: NEW_CONTRACT},
                    "last": NEW_CONTRACT, "expand_first": True, "n": len(GRAPH.order) + 2, "release": "2099.1"}

    # The copy's tests, over the copy: graph, planners and phase order, the SQLite walk,
    # the states (parity skipped for the 2099 head alone).
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-rs",
         "--rootdir", str(copy), "-c", str(copy / "pytest.ini"),
         "tests/unit", "tests/functional/test_walk.py", "tests/functional/test_states.py",
         "-k", "not mysql and not postgresql"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    skipped = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skipped and all("no golden dump of %s" % NEW_CONTRACT in line for line in skipped), skipped

    # The modules and the role through Ansible, from the copy's collection.
    database, out = tmp_path / "glance.sqlite", tmp_path / "seen.json"
    playbook = tmp_path / "new_release.yml"
    playbook.write_text(PLAYBOOK.format(db=database, out=out))
    collections = copy / ".build" / "collections"
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    ansible = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
                              "-c", "local", str(playbook)],
                             cwd=copy, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert ansible.returncode == 0, ansible.stdout[-4000:] + ansible.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["synced"][-1] == NEW_CONTRACT and NEW_EXPAND in result["synced"]
    assert result["facts"]["revisions"] == [NEW_CONTRACT] and result["facts"]["up_to_date"]
    assert result["facts"]["contract"]["head"] == NEW_CONTRACT
    assert result["facts"]["releases"] == {NEW_CONTRACT: "2099.1"}
    # The contract gate follows the new files: every node must run 2099.1 before contract.
    assert result["facts"]["contract"]["head_release"] == "2099.1"

    # Other work may change the real tree meanwhile (a developer's edits): only ours must not show.
    leaked = [line for line in set(_status().splitlines()) - set(before.splitlines())
              if "2099" in line or "/revisions/" in line]
    assert leaked == [] and REVISIONS_INIT.read_bytes() == init_before, leaked
