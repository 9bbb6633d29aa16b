"""The kolla-ansible and openstack-ansible guides' example playbooks, run as shipped.

Each guide's playbooks in docs/examples/<tool>/ are syntax-checked, then run
through real Ansible with the guide's own inventory plus a second one that
stands in for the cloud: every host connects locally, the deploy host
(glance_db_migration_host, localhost) runs modules with this virtualenv's
Python, and the API hosts have an interpreter that does not exist, so a
database task that ran there would fail. The database is reached through the
tool's own variables (kolla's glance_database_*, os_glance's glance_galera_*),
pointed at a fresh MariaDB database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, state

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
PLAYBOOKS = ("bootstrap.yml", "rolling-upgrade.yml")

# The tool's variables that make up its [database] connection, for a server
# at 127.0.0.1:3306 with root and no password.
TOOLS = {
    "kolla-ansible": lambda name: {
        "glance_database_user": "root", "glance_database_password": "",
        "glance_database_address": "127.0.0.1:3306", "glance_database_name": name},
    "openstack-ansible": lambda name: {
        "glance_galera_user": "root", "glance_container_mysql_password": "",
        "glance_galera_address": "127.0.0.1", "glance_galera_port": 3306, "glance_galera_database": name},
}


def api_hosts(tool):
    inventory = yaml.safe_load((EXAMPLES / tool / "inventory.yml").read_text())
    group = inventory["all"]["vars"]["glance_db_api_group"]

    def find(node):
        for name, child in (node.get("children") or {}).items():
            if name == group:
                return list(child["hosts"])
            found = find(child or {})
            if found:
                return found
        return None

    return find(inventory["all"])


def stand_ins(tool, tmp_path):
    """The second inventory: local connections, the deploy host on this Python."""
    hosts = {"localhost": {"ansible_python_interpreter": sys.executable}}
    for host in api_hosts(tool):
        hosts[host] = {"ansible_connection": "local", "ansible_python_interpreter": "/nonexistent/python"}
    path = tmp_path / "stand-ins.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def run(tool, playbook, tmp_path, extra, *args):
    return subprocess.run(
        [PLAYBOOK, "-i", str(EXAMPLES / tool / "inventory.yml"), "-i", str(stand_ins(tool, tmp_path)),
         str(EXAMPLES / tool / playbook), "-e", json.dumps(extra)] + list(args),
        capture_output=True, text=True, timeout=600, check=False, cwd=str(tmp_path),
        env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1"))


def metadefs_dir(tmp_path):
    """One small namespace file, in Glance's format, on the deploy host."""
    path = tmp_path / "metadefs"
    path.mkdir()
    (path / "example-namespace.json").write_text(json.dumps({
        "namespace": "OS::Example::Guide", "display_name": "Guide example", "description": "From the test.",
        "visibility": "public", "protected": True,
        "resource_type_associations": [{"name": "OS::Glance::Image"}],
        "properties": {"hw_example": {"title": "Example", "type": "string"}}}))
    return path


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_example_playbooks_pass_syntax_check(tool, tmp_path):
    for playbook in PLAYBOOKS:
        done = run(tool, playbook, tmp_path, {}, "--syntax-check")
        assert done.returncode == 0, playbook + ": " + done.stdout[-2000:] + done.stderr[-2000:]


# kolla through its variables' URL; openstack-ansible through a glance-api.conf
# that only the deploy host has (the API hosts could not read it: no Python).
@pytest.mark.parametrize("tool,source", [("kolla-ansible", "url"), ("openstack-ansible", "config_file")])
def test_bootstrap_syncs_and_loads_metadefs_from_the_deploy_host(tool, source, make_database, tmp_path):
    db = make_database("mysql")
    extra = dict(TOOLS[tool](db.name), glance_db_metadefs_path=str(metadefs_dir(tmp_path)),
                 glance_db_backup_dir=str(tmp_path / "backups"))
    if source == "config_file":
        conf = tmp_path / "glance-api.conf"
        conf.write_text("[database]\nconnection = %s\n" % db.url)
        conf_dir = tmp_path / "glance-api.conf.d"
        conf_dir.mkdir()
        extra.update(glance_db_connection="", glance_db_config_file=[str(conf)], glance_db_config_dir=str(conf_dir))
    done = run(tool, "bootstrap.yml", tmp_path, extra)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "-> localhost]" in log  # delegated to the deploy host
    facts = state.read(db.engine).as_facts()
    assert facts["up_to_date"] is True, facts
    assert db.rows("SELECT namespace FROM metadef_namespaces") == [("OS::Example::Guide",)]
    assert not (tmp_path / "backups").exists()  # a fresh database needs no dump


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_rolling_upgrade_prepares_on_the_deploy_host_and_contract_waits_for_the_nodes(
        tool, make_database, tmp_path):
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    extra = dict(TOOLS[tool](db.name), glance_db_backup_dir=str(tmp_path / "backups"))

    done = run(tool, "rolling-upgrade.yml", tmp_path, extra, "--tags", "preflight,backup,expand")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    facts = state.read(db.engine).as_facts()
    assert facts["expand"]["at_head"] and facts["next_step"] == "contract", facts
    dumps = list((tmp_path / "backups").glob("glance-%s-*.sql" % db.name))
    assert len(dumps) == 1 and dumps[0].stat().st_size > 0, dumps

    # No API host can show the new release (their interpreter does not exist):
    # contract refuses, naming them, and the database keeps its contract branch.
    done = run(tool, "rolling-upgrade.yml", tmp_path, extra, "--tags", "contract")
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-4000:]
    assert "Contract refused" in log and all(host in log for host in api_hosts(tool)), log[-4000:]
    assert state.read(db.engine).as_facts()["contract"]["at_head"] is False
