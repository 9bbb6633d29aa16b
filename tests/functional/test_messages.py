"""What an operator reads first, through real Ansible: each writing module's
``msg`` in glance-manage's own words (taken from the oracle's manage.py), the
release names and the connection's source in the facts, the role's summary in
check mode, the role's refusal without a connection, and the usage line at the
top of playbooks/sync.yml run as written from the installed collection tarball.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import (
    CONTRACT, EXPAND, GRAPH)
from seed import seed_pre_ocata

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ORACLE_VENV_SCRIPT = REPO / "tests" / "parity" / "oracle-venv"
QUIET = dict(ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
             ANSIBLE_NOCOLOR="1")
ALL_HEADS = GRAPH.rows_for(GRAPH.ancestors(GRAPH.heads[EXPAND]) | GRAPH.ancestors(GRAPH.heads[CONTRACT]))


@pytest.fixture(scope="module")
def glance_words():
    """Every sentence glance-manage prints, as regexes (its %s and %(name)s as wildcards)."""
    venv = subprocess.run(["bash", str(ORACLE_VENV_SCRIPT)], capture_output=True, text=True, check=False)
    assert venv.returncode == 0, "cannot make real Glance's virtualenv:\n" + venv.stderr
    manage = next(Path(venv.stdout.strip().splitlines()[-1]).glob(
        "lib/python3*/site-packages/glance/cmd/manage.py"))
    words = set()
    for node in ast.walk(ast.parse(manage.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 10:
            pattern = re.sub(r"%(?:\\\([a-z_]+\\\))?s", ".+", re.escape(node.value))
            words.add(pattern)
    return words


def in_glance_words(words, msg):
    return any(re.fullmatch(pattern, msg) for pattern in words)


def play(tmp_path, tasks, name="play", extra=(), check=True):
    """Run ``tasks`` on localhost with ansible-playbook; return (every result registered, output)."""
    registered = ["r%d" % i for i in range(len(tasks))]
    for task, var in zip(tasks, registered):
        task.setdefault("register", var)
    results = tmp_path / ("%s.json" % name)
    tasks = tasks + [{"name": "Keep the results", "ansible.builtin.copy": {
        "dest": str(results), "mode": "0600",
        "content": "{{ [%s] | to_json }}" % ", ".join(registered)}}]
    playbook = tmp_path / ("%s.yml" % name)
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    done = subprocess.run([str(BIN / "ansible-playbook"), str(playbook)] + list(extra),
                          capture_output=True, text=True, timeout=600, check=False,
                          env=dict(os.environ, **QUIET))
    if check:
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return json.loads(results.read_text()), done.stdout + done.stderr


def module_task(module, url, check_mode=False, **args):
    task = {"name": "%s %s" % (module, args), "openstack_ops.glance.glance_db_%s" % module:
            dict(args, connection=url)}
    if check_mode:
        task["check_mode"] = True
    return task


def test_each_phase_says_what_glance_manage_says(make_database, tmp_path, glance_words):
    db = make_database("sqlite")  # the words do not depend on the engine
    phases.run(db.engine, "sync", version="mitaka02")
    seed_pre_ocata(db, count=20)
    steps = [
        ("expand", True, {}), ("expand", False, {}), ("expand", False, {}),
        ("migrate", True, {}), ("migrate", False, {}), ("migrate", False, {}),
        ("contract", True, {}), ("contract", False, {}), ("contract", False, {}),
        ("expand", False, {}), ("migrate", False, {}), ("sync", False, {}),
    ]
    results, output = play(tmp_path, [module_task(m, db.url, c, **a) for m, c, a in steps])
    msgs = [r["msg"] for r in results]
    after_expand = ", ".join(results[1]["glance_db"]["revisions"])
    up_to_date = "Database is up to date. No migrations needed."
    assert msgs[1] == "Upgraded database to: %s, current revision(s): %s" % (GRAPH.heads[EXPAND], after_expand)
    assert msgs[2] == "Database expansion is up to date. No expansion needed."
    migrated = sum(m["migrated"] for m in results[4]["data_migrations"])
    assert migrated > 0 and msgs[4] == "Migrated %d rows" % migrated
    assert msgs[5] == "Database migration is up to date. No migration needed."
    assert msgs[7] == "Upgraded database to: %s, current revision(s): %s" % (
        GRAPH.heads[CONTRACT], ", ".join(ALL_HEADS))
    assert msgs[8:] == [up_to_date] * 4
    for i in (0, 3, 6):  # check mode: what would happen, and nothing done
        assert msgs[i].startswith("Your database is not up to date. Check mode, nothing written: "), msgs[i]
        assert results[i]["changed"] is True and results[i]["revisions_applied"] == []
    assert "would migrate %d rows" % migrated in msgs[3]
    assert "would apply" in msgs[0] and GRAPH.heads[EXPAND] in msgs[0]
    for msg in msgs[1:3] + msgs[4:6] + msgs[7:]:
        assert in_glance_words(glance_words, msg), msg
    assert output.count("Traceback") == 0


def test_sync_messages_and_facts(make_database, tmp_path, glance_words):
    db = make_database("sqlite")
    old = GRAPH.order[2].id  # an early revision of the trunk
    conf = tmp_path / "glance-api.conf"
    conf.write_text("[database]\nconnection = %s\n" % db.url)
    tasks = [
        module_task("sync", db.url, True),
        module_task("sync", db.url, version=old),
        module_task("sync", db.url, version=old),
        module_task("sync", db.url),
        module_task("sync", db.url),
        module_task("facts", db.url),
        {"name": "facts from glance-api.conf",
         "openstack_ops.glance.glance_db_facts": {"config_file": [str(conf)]}},
    ]
    results, output = play(tmp_path, tasks)
    msgs = [r.get("msg") for r in results]
    assert msgs[0].startswith("Your database is not up to date. Check mode, nothing written: sync would apply")
    assert results[0]["plan"]["revisions_after"] == ALL_HEADS
    assert msgs[1] == "Upgraded database to: %s, current revision(s): %s" % (old, old)
    assert msgs[2] == "Database is already at %s. No migrations needed." % old
    assert msgs[3] == "Database is synced successfully."
    assert msgs[4] == "Database is up to date. No migrations needed."
    for msg in (msgs[1], msgs[3], msgs[4]):
        assert in_glance_words(glance_words, msg), msg

    facts = results[5]["glance_db"]
    assert facts["revisions"] == ALL_HEADS
    for row in facts["revisions"]:
        release = facts["releases"][row]
        # Glance names revisions after their release: ocata_contract01, 2024_1_contract01 (2024.1)
        assert re.fullmatch(r"[a-z]+|\d{4}\.[12]", release), release
        assert row.startswith(release.replace(".", "_")), (row, release)
    assert facts["contract"]["release"] == facts["releases"][GRAPH.heads[CONTRACT]]
    assert facts["expand"]["release"] == GRAPH.get(GRAPH.heads[EXPAND]).release
    assert facts["connection_source"] == "connection"
    assert results[6]["glance_db"]["connection_source"] == str(conf)


def test_releases_are_openstack_release_names():
    """Every revision's release, in graph order, walks OpenStack's releases forwards."""
    releases = list(dict.fromkeys(r.release for r in GRAPH.order if r.branch != CONTRACT))
    named = [r for r in releases if not r[0].isdigit()]
    dated = [r for r in releases if r[0].isdigit()]
    assert releases == named + dated and named[0] == "liberty" and named == sorted(named)
    assert dated == sorted(dated)
    assert all(GRAPH.get(r.id).release in releases for r in GRAPH.order)


def test_role_check_mode_says_what_the_database_would_be(make_database, tmp_path):
    db = make_database("sqlite")
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), str(REPO / "playbooks" / "sync.yml"), "--check",
         "-e", "glance_db_connection=%s" % db.url],
        capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ, **QUIET))
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    assert "Revisions after the sync: %s" % ", ".join(ALL_HEADS) in out, out[-3000:]
    assert "Revisions now:" not in out
    assert "Check mode, nothing written: sync would apply" in out
    assert not Path(db.url[len("sqlite:///"):]).exists()  # nothing written


def test_role_without_connection_names_the_role_variables(tmp_path):
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), str(REPO / "playbooks" / "sync.yml")],
        capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ, **QUIET))
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "glance_db_connection" in out and "glance_db_config_file" in out, out[-3000:]
    assert "one of the following is required" not in out, out[-3000:]
    assert "Read the database state" not in out.split("Check that glance_db_connection")[0]


def test_usage_line_of_sync_playbook_works_as_written(tmp_path):
    """Built and installed like a user would, then the playbook's own usage line."""
    build = tmp_path / "build"
    done = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO),
                           "--output-path", str(build)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # A home of its own: the default collections path is ANSIBLE_HOME/collections.
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "home"), **QUIET)
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    tarball = next(build.glob("openstack_ops-glance-*.tar.gz"))
    done = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball)],
                          capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    header = (REPO / "playbooks" / "sync.yml").read_text()
    line = next(line for line in header.splitlines() if line.startswith("#   ansible-playbook "))
    argv = shlex.split(line[1:])
    database = tmp_path / "glance.sqlite"
    argv = [str(BIN / "ansible-playbook")] + [a.replace("/tmp/glance.sqlite", str(database)) for a in argv[1:]]
    for run in range(2):
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env,
                              cwd=str(tmp_path), timeout=300)
        assert done.returncode == 0, line + "\n" + done.stdout[-3000:] + done.stderr[-2000:]
        expected = "Database is synced successfully." if run == 0 else \
            "Database is up to date. No migrations needed."
        assert expected in done.stdout, done.stdout[-3000:]
    assert not list(tmp_path.glob("*.migration-lock"))
