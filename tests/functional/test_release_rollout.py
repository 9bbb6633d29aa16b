"""A rolling upgrade between releases that change no schema: Glance 31 (2025.2) to 33 (2026.2).

Glance's head has been 2024_1_contract01 since 2024.1, so the revisions cannot
say which release a rollout installs. playbooks/rolling_upgrade.yml runs on three
stand-in API hosts that report Glance 31.0.0 until their node tasks run and
33.0.0 after, against a MariaDB database already at the head: every host must be
upgraded, while expand, migrate and contract report nothing to do and write nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "rolling_upgrade.yml"
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
HOSTS = ("api1", "api2", "api3")

# The node tasks: "install" Glance 33.0.0 on the stand-in host.
NODE_TASKS = """\
- name: Install Glance 33.0.0 on this stand-in host
  ansible.builtin.copy:
    content: "33.0.0\\n"
    dest: "{{ rollout_dir }}/{{ inventory_hostname }}/glance-version"
    mode: "0644"
"""


def inventory(tmp_path, url, **extra):
    """Three local API hosts whose glance-version file says what they run (31.0.0 to start)."""
    for host in HOSTS:
        (tmp_path / host).mkdir()
        (tmp_path / host / "glance-version").write_text("31.0.0\n")
    (tmp_path / "node.yml").write_text(NODE_TASKS)
    variables = {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "rollout_dir": str(tmp_path),
        "glance_db_connection": url,
        "glance_db_backup_dir": str(tmp_path / "backups"),
        "glance_db_node_release_command": ["cat", "%s/{{ inventory_hostname }}/glance-version" % tmp_path],
        "glance_db_node_release_file": "%s/{{ inventory_hostname }}/glance_db.fact" % tmp_path,
        "glance_db_node_tasks": str(tmp_path / "node.yml"),
        "glance_db_health_url": "",
    }
    variables.update(extra)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"glance_api": {"hosts": {host: {} for host in HOSTS}, "vars": variables}}))
    return path


def rollout(inventory_path, *args):
    """Run the rolling upgrade; every task's result per host (callback_plugins/record_results.py) and the process."""
    recorded = inventory_path.parent / "results.json"
    if recorded.exists():
        recorded.unlink()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory_path), str(PLAYBOOK)] + list(args),
        capture_output=True, text=True, timeout=600, check=False, cwd=str(inventory_path.parent),
        env=dict(os.environ, ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS), ANSIBLE_CALLBACKS_ENABLED="record_results",
                 RECORD_RESULTS_FILE=str(recorded), ANSIBLE_NOCOLOR="1"))
    return (json.loads(recorded.read_text()) if recorded.exists() else None), done


def results(report, task):
    """Every host's result of the tasks named ``task``, in the order they ran."""
    return [(host, result) for each in report["tasks"] if each["name"].split(" : ")[-1] == task
            for host, result in each["hosts"].items()]


def messages(report, task):
    return [result.get("msg") for _host, result in results(report, task) if not result.get("skipped")]


def fingerprint(db):
    """What a write would change: every table's checksum, the triggers, the version rows."""
    tables = [row[0] for row in db.rows("SHOW TABLES")]
    checksums = {row[0]: row[1] for row in db.rows("CHECKSUM TABLE %s" % ", ".join("`%s`" % t for t in tables))}
    triggers = db.rows("SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                       "WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1")
    return checksums, triggers, sorted(db.rows("SELECT version_num FROM alembic_version"))


def test_a_rollout_without_schema_change_upgrades_every_host_and_writes_nothing(make_database, tmp_path):
    db = make_database("mysql")
    phases.run(db.engine, "sync")
    db.execute("INSERT INTO images (id, status, created_at, deleted, min_disk, min_ram, protected, visibility) "
               "VALUES ('kept', 'active', CURRENT_TIMESTAMP, 0, 0, 0, 0, 'public')")
    before = fingerprint(db)
    path = inventory(tmp_path, db.url, glance_db_target_release="2026.2")

    report, done = rollout(path)
    assert done.returncode == 0 and report, (done.stdout[-4000:], done.stderr[-2000:])

    # Every host was upgraded, one at a time, from 31.0.0 (2025.2) to 33.0.0 (2026.2).
    for host in HOSTS:
        assert (tmp_path / host / "glance-version").read_text() == "33.0.0\n"
        marker = json.loads((tmp_path / host / "glance_db.fact").read_text())
        assert (marker["release"], marker["previous"]) == ("2026.2", "2025.2"), marker
    said = messages(report, "Show what this host ran before and runs now")
    assert sorted(said) == sorted("%s: upgraded from Glance 2025.2 to 2026.2" % host for host in HOSTS), said
    summary = messages(report, "Summarise the rollout once the last batch is done")
    assert len(summary) == 1 and summary[0].startswith("3 of 3 host(s) upgraded to 2026.2: api1 (2025.2 -> 2026.2)"), \
        summary

    # The database steps had nothing to do, said so, and wrote nothing.
    for task in ("Expand the database", "Migrate the data", "Contract the database"):
        ran = [result for _host, result in results(report, task) if not result.get("skipped")]
        assert ran and all(result["changed"] is False for result in ran), (task, ran)
    assert "up to date" in " ".join(messages(report, "Contract the database")).lower()
    assert fingerprint(db) == before
    assert not (tmp_path / "backups").exists()  # nothing changes, so no dump

    # Run again: every host already runs 2026.2, and the play says so.
    report, done = rollout(path)
    assert done.returncode == 0 and report, (done.stdout[-4000:], done.stderr[-2000:])
    summary = messages(report, "Summarise the rollout once the last batch is done")
    assert summary == ["No host needed upgrading: all 3 already ran 2026.2 or later."], summary
    assert all(report["stats"][host]["changed"] == 0 for host in HOSTS), report["stats"]
    assert fingerprint(db) == before


def test_a_rollout_without_a_target_release_is_refused_naming_the_variable(make_database, tmp_path):
    db = make_database("mysql")
    phases.run(db.engine, "sync")
    path = inventory(tmp_path, db.url)

    report, done = rollout(path)
    assert done.returncode != 0 and report, (done.stdout[-4000:], done.stderr[-2000:])
    failed = [result["msg"] for each in report["tasks"] for result in each["hosts"].values() if result.get("failed")]
    assert failed and all("glance_db_target_release is not set" in msg for msg in failed), failed
    assert "Traceback" not in done.stdout
    # Nothing ran on any host: each still runs what it ran.
    assert all((tmp_path / host / "glance-version").read_text() == "31.0.0\n" for host in HOSTS)

    # The node entry point alone refuses the same way (a play that skips preflight).
    report, done = rollout(path, "--tags", "nodes")
    assert done.returncode != 0, done.stdout[-4000:]
    failed = [result["msg"] for each in report["tasks"] for result in each["hosts"].values() if result.get("failed")]
    assert failed and failed[0].startswith("Node upgrade refused: glance_db_target_release is not set"), failed
    assert all((tmp_path / host / "glance-version").read_text() == "31.0.0\n" for host in HOSTS)
