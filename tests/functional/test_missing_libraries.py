"""A managed host without SQLAlchemy gets Ansible's missing_required_lib message
from every module that needs it, whichever path first needs it: the writing phases
on a new SQLite file plan from a driver-only read, so Alembic's revision map is
their first use. Runs the real modules through ansible-playbook."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from ansible.module_utils.basic import missing_required_lib

BLOCKER = Path(__file__).resolve().parent / "blockers" / "no_sqlalchemy"
# The modules that answer from the driver alone when there is nothing to do,
# and need SQLAlchemy and Alembic as soon as there is.
MODULES = ("sync", "expand", "contract")


def test_new_sqlite_file_without_sqlalchemy_names_the_missing_library(tmp_path):
    databases = {module: tmp_path / ("%s.sqlite" % module) for module in MODULES}
    tasks = [{"name": module,
              "openstack_ops.glance.glance_db_%s" % module: {"connection": "sqlite:///%s" % databases[module]},
              "environment": {"PYTHONPATH": str(BLOCKER)},
              "register": "result_%s" % module, "ignore_errors": True}
             for module in MODULES]
    tasks.append({"name": "Write every result", "ansible.builtin.copy": {
        "dest": str(tmp_path / "results.json"),
        "content": "{{ [%s] | to_json }}" % ", ".join("result_%s" % m for m in MODULES)}})
    playbook = tmp_path / "missing.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)],
        capture_output=True, text=True, timeout=300, check=False,
        # The import error behind the message is kept as the task's exception.
        env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                 ANSIBLE_DISPLAY_TRACEBACK="error"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())

    # Ansible's own message, word for word, naming the interpreter the module ran with.
    expected = missing_required_lib("SQLAlchemy and Alembic")
    for module, result in zip(MODULES, results):
        msg = result.get("msg", "")
        assert result.get("failed") is True, (module, result)
        python = re.search(r"'s Python (\S+)\. ", msg)
        assert python and os.path.realpath(python.group(1)) == os.path.realpath(
            os.environ["ANSIBLE_PYTHON_INTERPRETER"]), (module, msg)
        assert msg == expected.replace(sys.executable, python.group(1)), (module, msg)
        assert "Traceback" not in msg and "\n" not in msg.strip(), (module, msg)
        assert "No module named 'sqlalchemy'" in result.get("exception", ""), (module, result)
        assert not databases[module].exists(), "%s created the database without SQLAlchemy" % module
