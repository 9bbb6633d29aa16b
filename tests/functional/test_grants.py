"""The grants the collection needs beyond Glance's own (issue 22, point 6), through real Ansible.

The Glance users here have kolla-ansible's grant only (ALL ON their database). The
server is a private MariaDB with binary logging: the shared one on 3306 has none, and
without it log_bin_trust_function_creators does not matter. There, a user without SUPER
gets error 1419 from CREATE TRIGGER unless the setting is on: what expand's triggers
need, and what the role sets for the run only, with an admin connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pymysql
import pytest
import sqlalchemy as sa
import yaml

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import connection as db_connection
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import MissingPrivilege
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import CONTRACT, GRAPH
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.lock import GaleraLease
import galera
from private_server import start_private_mariadb

BIN = Path(sys.executable).parent
QUIET = dict(ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_NOCOLOR="1")
TRUST = "log_bin_trust_function_creators"
SET_TRUST = "SET GLOBAL log_bin_trust_function_creators = 1"
# Before Ocata: expand creates Glance's triggers insert_visibility and update_visibility.
PRE_OCATA = "mitaka02"


def _password():
    """A password with the characters that break careless quoting, and nothing else in any output."""
    return "P@ss:/%%w+d %s" % uuid.uuid4().hex[:10]


class Glance(object):
    """A Glance database and its user, with kolla-ansible's grant only (ALL on the database)."""

    def __init__(self, server, privileges="ALL PRIVILEGES"):
        self.server = server
        self.name = "g_%s" % uuid.uuid4().hex[:10]
        self.password = _password()
        self.url = "mysql+pymysql://%s:%s@127.0.0.1:%d/%s" % (self.name, quote(self.password, safe=""),
                                                              server.port, self.name)
        for statement in ("CREATE DATABASE %s" % self.name,
                          "CREATE USER %s@'%%' IDENTIFIED BY '%s'" % (self.name, self.password),
                          "GRANT %s ON %s.* TO %s@'%%'" % (privileges, self.name, self.name)):
            server.execute(statement)

    def connect(self):
        return pymysql.connect(host="127.0.0.1", port=self.server.port, user=self.name, password=self.password,
                               database=self.name, autocommit=True)

    def scalar(self, sql):
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchone()[0]
        finally:
            conn.close()


@pytest.fixture(scope="module")
def binlog_server():
    """A private MariaDB with log_bin on, and an admin user with a password (root has none)."""
    with start_private_mariadb(log_bin=True) as server:
        server.admin_password = _password()
        server.execute("CREATE USER gadmin@'%%' IDENTIFIED BY '%s'" % server.admin_password)
        server.execute("GRANT ALL PRIVILEGES ON *.* TO gadmin@'%' WITH GRANT OPTION")
        server.admin_url = "mysql+pymysql://gadmin:%s@127.0.0.1:%d/" % (
            quote(server.admin_password, safe=""), server.port)
        assert server.execute("SELECT @@log_bin, @@log_bin_trust_function_creators") == ((1, 0),)
        yield server


def trust(server):
    return bool(server.execute("SELECT @@GLOBAL.log_bin_trust_function_creators")[0][0])


def play(tmp_path, tasks, name="play"):
    """Run ``tasks`` on localhost with ansible-playbook -v; (each task's result, everything printed).
    A failing task is ignored, so that every result is kept."""
    registered = ["r%d" % i for i in range(len(tasks))]
    for task, var in zip(tasks, registered):
        task.update(register=var, ignore_errors=True)
    results = tmp_path / ("%s.json" % name)
    keep = {"name": "Keep the results", "ansible.builtin.copy": {
        "dest": str(results), "mode": "0600", "content": "{{ [%s] | to_json }}" % ", ".join(registered)}}
    playbook = tmp_path / ("%s.yml" % name)
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks + [keep]}]))
    done = subprocess.run([str(BIN / "ansible-playbook"), "-v", str(playbook)], capture_output=True, text=True,
                          timeout=600, check=False, env=dict(os.environ, **QUIET))
    assert results.exists(), done.stdout[-4000:] + done.stderr[-2000:]
    return json.loads(results.read_text()), done.stdout + done.stderr


def grants_task(glance, check_mode=False, **args):
    task = {"name": "grants", "openstack_ops.glance.glance_db_grants": dict(args, connection=glance.url)}
    if check_mode:
        task["check_mode"] = True
    return task


def role_task(entry, glance, **variables):
    """The role's ``entry`` point as a task; a failure inside it ends the role, as in a real play."""
    variables = dict(dict(glance_db_connection=glance.url, glance_db_backup=False, glance_db_metadefs_load=False,
                          glance_db_api_group="all", glance_db_node_release_command=[],
                          glance_db_node_release=GRAPH.get(GRAPH.heads[CONTRACT]).release,
                          glance_db_target_release=GRAPH.get(GRAPH.heads[CONTRACT]).release), **variables)
    return {"name": "role %s" % entry, "block": [{"name": entry, "ansible.builtin.include_role": {
        "name": "openstack_ops.glance.glance_db", "tasks_from": entry}, "vars": variables}]}


def run_role(tmp_path, steps, glance, name="role", **variables):
    """Run the role's entry points ``steps`` in one play; (whether each ended well, its message, output)."""
    tasks = []
    for i, entry in enumerate(steps):
        block = role_task(entry, glance, **variables)
        block["block"].append({"name": "ok", "ansible.builtin.set_fact": {"step_%d" % i: {"failed": False}}})
        block["rescue"] = [{"name": "failed", "ansible.builtin.set_fact": {"step_%d" % i: {
            "failed": True, "msg": "{{ ansible_failed_result.msg | default('') }}"}}}]
        tasks.append(block)
    results = tmp_path / ("%s.json" % name)
    tasks.append({"name": "Keep the outcomes", "ansible.builtin.copy": {
        "dest": str(results), "mode": "0600",
        "content": "{{ [%s] | to_json }}" % ", ".join("step_%d" % i for i in range(len(steps)))}})
    playbook = tmp_path / ("%s.yml" % name)
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    # localhost in the inventory: the API group (all) has it, for preflight and contract, which
    # reads each API host's release from its host variables (a role variable is not one).
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "glance_db_node_release": GRAPH.get(GRAPH.heads[CONTRACT]).release}}}}))
    done = subprocess.run([str(BIN / "ansible-playbook"), "-v", "-i", str(inventory), str(playbook)],
                          capture_output=True, text=True, timeout=600, check=False, env=dict(os.environ, **QUIET))
    assert results.exists(), done.stdout[-4000:] + done.stderr[-2000:]
    return json.loads(results.read_text()), done.stdout + done.stderr


def assert_no_password(text, *passwords):
    for password in passwords:
        for form in (password, quote(password, safe="")):
            assert form not in text


def revisions(glance):
    conn = glance.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version ORDER BY 1")
            return [row[0] for row in cursor.fetchall()]
    finally:
        conn.close()


def at_pre_ocata(tmp_path, glance):
    """Sync to before Ocata (the role's sync sets the setting for any run with revisions)."""
    outcome, output = run_role(tmp_path, ["main"], glance, name="sync", glance_db_sync_version=PRE_OCATA,
                               glance_db_admin_connection=glance.server.admin_url)
    assert outcome == [{"failed": False}], output[-3000:]
    assert revisions(glance) == [PRE_OCATA]


# ---- the server: what the setting is for
def test_without_the_setting_a_user_without_super_cannot_create_a_trigger(binlog_server):
    glance = Glance(binlog_server)
    conn = glance.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE TABLE t (id INT PRIMARY KEY)")
            with pytest.raises(pymysql.err.OperationalError) as refused:
                cursor.execute("CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW SET NEW.id = NEW.id")
            assert refused.value.args[0] == 1419
            binlog_server.execute(SET_TRUST)
            try:
                cursor.execute("CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW SET NEW.id = NEW.id")
            finally:
                binlog_server.execute("SET GLOBAL log_bin_trust_function_creators = 0")
    finally:
        conn.close()


# ---- the module
def test_the_module_refuses_without_admin_naming_the_exact_statements(binlog_server, tmp_path):
    glance = Glance(binlog_server, privileges="SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP")
    results, output = play(tmp_path, [grants_task(glance, log_bin_trust_function_creators=True),
                                      grants_task(glance)])
    refused, nothing_asked = results
    assert refused["failed"]
    assert ("GRANT TRIGGER ON `%s`.* TO '%s'@'%%';" % (glance.name, glance.name)) in refused["msg"]
    assert SET_TRUST in refused["msg"] and "error 1419" in refused["msg"]
    assert "glance_db_admin_connection" in refused["msg"]
    # Not on Galera, and no triggers asked for: nothing is needed.
    assert not nothing_asked["failed"] and not nothing_asked["changed"]
    assert not trust(binlog_server)
    assert_no_password(output, glance.password)


def test_check_mode_reports_what_it_would_do_and_changes_nothing(binlog_server, tmp_path):
    glance = Glance(binlog_server)
    lock_database = "lock_%s" % glance.name
    results, output = play(tmp_path, [grants_task(glance, check_mode=True, admin_connection=binlog_server.admin_url,
                                                  galera_lock_database=lock_database,
                                                  log_bin_trust_function_creators=True)])
    result = results[0]
    assert result["changed"] and not result.get("failed"), result
    assert result["statements"] == [
        "CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4" % lock_database,
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `%s`.* TO '%s'@'%%'" % (lock_database, glance.name),
        SET_TRUST]
    assert result[TRUST] == {"before": False, "after": True, "changed": True}
    assert not trust(binlog_server)
    assert not binlog_server.execute("SHOW DATABASES LIKE '%s'" % lock_database)
    assert_no_password(output, glance.password, binlog_server.admin_password)


def test_the_grant_lets_a_glance_user_take_the_lease(binlog_server, tmp_path):
    """The lease the writing phases take on Galera (lock.GaleraLease), here on a plain server."""
    glance = Glance(binlog_server)
    lock_database = "lock_%s" % glance.name
    engine = db_connection.create_engine(sa.engine.make_url(glance.url))
    try:
        with pytest.raises(MissingPrivilege):
            GaleraLease(engine, 10, lock_database).acquire(2)
        results, output = play(tmp_path, [
            grants_task(glance, admin_connection=binlog_server.admin_url, galera_lock_database=lock_database),
            grants_task(glance, admin_connection=binlog_server.admin_url, galera_lock_database=lock_database)])
        granted, again = results
        assert granted["changed"] and len(granted["statements"]) == 2, granted
        assert not again["changed"] and again["statements"] == []
        lease = GaleraLease(engine, 10, lock_database)
        lease.acquire(5)
        lease.release()
    finally:
        engine.dispose()
    assert_no_password(output, glance.password, binlog_server.admin_password)


def test_an_admin_connection_to_another_server_is_refused(binlog_server, tmp_path):
    glance = Glance(binlog_server)
    results, output = play(tmp_path, [grants_task(glance, admin_connection="mysql+pymysql://root@127.0.0.1:3306/",
                                                  log_bin_trust_function_creators=True)])
    assert results[0]["failed"] and "point it at the same server" in results[0]["msg"]
    assert not trust(binlog_server)
    assert_no_password(output, glance.password)


# ---- the role
def test_sync_across_ocata_needs_the_setting_too(binlog_server, tmp_path):
    """Ocata's contract revision drops Glance's triggers (DROP TRIGGER IF EXISTS, as Glance's does), and
    MariaDB checks DROP TRIGGER as it checks CREATE TRIGGER: main's sync of an empty database refuses
    without an admin connection, before changing anything, and runs with one."""
    glance = Glance(binlog_server)
    outcome, output = run_role(tmp_path, ["main"], glance)
    assert outcome[0]["failed"] and SET_TRUST in outcome[0]["msg"], outcome
    assert glance.scalar("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()") == 0
    outcome, output_admin = run_role(tmp_path, ["main"], glance, name="admin",
                                     glance_db_admin_connection=binlog_server.admin_url)
    assert outcome == [{"failed": False}], output_admin[-3000:]
    assert GRAPH.heads[CONTRACT] in revisions(glance)
    assert not trust(binlog_server)
    assert_no_password(output + output_admin, glance.password, binlog_server.admin_password)


def test_without_admin_the_role_refuses_before_changing_anything(binlog_server, tmp_path):
    glance = Glance(binlog_server)
    at_pre_ocata(tmp_path, glance)
    outcome, output = run_role(tmp_path, ["preflight", "expand"], glance)
    for step in outcome:
        assert step["failed"] and SET_TRUST in step["msg"], step
        assert "on that server, only while the run lasts" in step["msg"]
    assert revisions(glance) == [PRE_OCATA]
    assert not trust(binlog_server)
    assert_no_password(output, glance.password)


def test_with_admin_expand_and_contract_set_it_for_the_run_and_put_it_back(binlog_server, tmp_path):
    glance = Glance(binlog_server)
    at_pre_ocata(tmp_path, glance)
    outcome, output = run_role(tmp_path, ["preflight", "expand"], glance,
                               glance_db_admin_connection=binlog_server.admin_url)
    assert outcome == [{"failed": False}] * 2, output[-4000:]
    # Created by the Glance user itself, under the setting; which is off again.
    assert glance.scalar("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()") == 2
    assert not trust(binlog_server)
    assert "Ran as the admin: %s." % SET_TRUST in output
    outcome, output_contract = run_role(tmp_path, ["contract"], glance, name="contract",
                                        glance_db_admin_connection=binlog_server.admin_url)
    assert outcome == [{"failed": False}], output_contract[-4000:]
    assert GRAPH.heads[CONTRACT] in revisions(glance)
    assert not trust(binlog_server)
    assert_no_password(output + output_contract, glance.password, binlog_server.admin_password)


def test_the_setting_is_put_back_when_expand_fails(binlog_server, tmp_path):
    """expand fails after the setting is on (another run holds the migration lock): it is off again."""
    glance = Glance(binlog_server)
    at_pre_ocata(tmp_path, glance)
    holder = glance.connect()
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK('openstack_ops.glance.db.%s', 0)" % glance.name)
            assert cursor.fetchone()[0] == 1
        outcome, output = run_role(tmp_path, ["expand"], glance, glance_db_admin_connection=binlog_server.admin_url,
                                   glance_db_lock_timeout=1)
    finally:
        holder.close()
    assert outcome[0]["failed"] and "migration lock" in outcome[0]["msg"], outcome
    assert "Ran as the admin: %s." % SET_TRUST in output  # it was on for the run
    assert not trust(binlog_server)
    assert revisions(glance) == [PRE_OCATA]
    assert_no_password(output, glance.password, binlog_server.admin_password)


# ---- Galera: the lease is needed, and binary logging counts as on even with log_bin off
class _GaleraNode(object):
    """Node 1 of scripts/galera, as Glance() expects a server (port, execute, admin_url)."""

    def __init__(self):
        self.port = galera.port(1)
        self.admin_password = None
        self.admin_url = galera.server(1) + "/"

    def execute(self, sql):
        return galera.admin(1, sql)


@pytest.mark.galera
def test_on_galera_the_role_grants_the_lease_and_sets_it_on_the_node(tmp_path):
    galera.require_cluster()
    node = _GaleraNode()
    glance = Glance(node)
    try:
        before = bool(node.execute("SELECT @@GLOBAL.log_bin_trust_function_creators")[0][0])
        results, output = play(tmp_path, [grants_task(glance, log_bin_trust_function_creators=True)])
        refused = results[0]
        assert refused["failed"], refused
        assert ("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `glance_migration_lock`.* TO '%s'@'%%';"
                % glance.name) in refused["msg"]
        if not before:  # Galera emulates binary logging: the setting is needed with log_bin off too
            assert "on that node, only while the run lasts: %s;" % SET_TRUST in refused["msg"]
        outcome, output_role = run_role(tmp_path, ["main"], glance, glance_db_admin_connection=node.admin_url)
        assert outcome == [{"failed": False}], output_role[-4000:]
        assert GRAPH.heads[CONTRACT] in revisions(glance)
        assert bool(node.execute("SELECT @@GLOBAL.log_bin_trust_function_creators")[0][0]) == before
        assert_no_password(output + output_role, glance.password)
    finally:
        node.execute("DROP DATABASE IF EXISTS %s" % glance.name)
        node.execute("DROP USER IF EXISTS %s@'%%'" % glance.name)
