"""The 3-node Galera cluster of scripts/galera, for tests/functional/test_galera*.py.

Node N (1-3) answers on 127.0.0.1:4305+N (+ GALERA_PORT_OFFSET), root without
password. These tests are marked ``galera`` and run in scripts/test's galera
stage, one at a time, not in the main pytest run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (
    connection as db_connection,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "galera"
OFFSET = int(os.environ.get("GALERA_PORT_OFFSET", "0"))
NODES = (1, 2, 3)


def port(node):
    return 4305 + node + OFFSET


def server(node):
    return "mysql+pymysql://root@127.0.0.1:%d" % port(node)


def script(*args, timeout=180):
    return subprocess.run(["bash", str(SCRIPT)] + list(args), capture_output=True, text=True,
                          timeout=timeout, check=False, env=dict(os.environ, GALERA_PORT_OFFSET=str(OFFSET)))


def require_cluster():
    """Fail (in CI) or skip unless all three nodes are Primary and Synced."""
    status = script("status", timeout=60)
    if status.returncode != 0:
        reason = "the Galera cluster is not up (bash scripts/galera start):\n" + status.stdout
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def admin(node, sql, params=None, timeout=30):
    """Run ``sql`` (or a list of statements, in one session) through ``node``; the last one's rows."""
    engine = sa.create_engine(server(node) + "/mysql", isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 5, "read_timeout": timeout,
                                            "write_timeout": timeout})
    try:
        with engine.connect() as conn:
            for statement in ([sql] if isinstance(sql, str) else sql):
                result = conn.execute(sa.text(statement), params or {})
            return [tuple(r) for r in result] if result.returns_rows else None
    finally:
        engine.dispose()


def status(node, name):
    return admin(node, "SHOW GLOBAL STATUS LIKE :n", {"n": name})[0][1]


def pid(node):
    out = script("pid", str(node), timeout=10)
    return int(out.stdout) if out.returncode == 0 and out.stdout.strip() else None


def signal_node(node, sig):
    os.kill(pid(node), sig)


def wait_cluster(size=3, timeout=120):
    """Wait until every node reports a Primary, Synced cluster of ``size``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if script("status", timeout=60).returncode == 0:
            return
        time.sleep(1)
    raise AssertionError("cluster not back to 3 Synced nodes:\n" + script("status").stdout)


def restore_cluster():
    """The watchdog's cure: thaw frozen nodes, start dead ones, wait for 3 Synced."""
    for node in NODES:
        node_pid = pid(node)
        if node_pid:
            try:
                os.kill(node_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    out = script("start", timeout=240)
    if out.returncode != 0:
        out = script("restart", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def writable_everywhere(marker):
    """A write through every node succeeds and is seen through the others."""
    admin(1, "CREATE TABLE IF NOT EXISTS %s.writes (node INT PRIMARY KEY, v VARCHAR(40))" % marker)
    for node in NODES:
        # wsrep_sync_wait 15: the write waits until this node has applied the CREATE TABLE.
        admin(node, ["SET SESSION wsrep_sync_wait = 15", "REPLACE INTO %s.writes VALUES (:n, :v)" % marker],
              {"n": node, "v": "w%d" % node}, timeout=20)
    for node in NODES:
        rows = admin(node, ["SET SESSION wsrep_sync_wait = 1", "SELECT COUNT(*) FROM %s.writes" % marker])
        assert rows[0][0] == 3, (node, rows)
    admin(1, "DROP TABLE %s.writes" % marker)


class GaleraDatabase(object):
    """A throwaway database on the cluster, with an engine through each node."""

    __test__ = False

    def __init__(self):
        self.name = "glance_g_%s" % uuid.uuid4().hex[:12]
        admin(1, "CREATE DATABASE %s" % self.name)
        # Node 1 returns once it has run the CREATE; the others apply it a moment later, and a
        # connection through them before then gets 1049 (it failed a race in a CI run). A causal
        # SHOW (wsrep_sync_wait 1) did not wait for it in another: poll.
        for node in NODES[1:]:
            deadline = time.monotonic() + 30
            while not admin(node, ["SET SESSION wsrep_sync_wait = 15", "SHOW DATABASES LIKE :n"], {"n": self.name}):
                assert time.monotonic() < deadline, "database %s not on node %d in 30 s" % (self.name, node)
                time.sleep(0.05)
        self.engines = {}

    def url(self, node):
        return "%s/%s" % (server(node), self.name)

    def engine(self, node=1, read_timeout=None):
        if node not in self.engines:
            self.engines[node] = db_connection.create_engine(
                db_connection.resolve_url(self.url(node)), read_timeout=read_timeout or 60)
        return self.engines[node]

    def scalar(self, sql, node=1, **params):
        with self.engine(node).connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql, node=1, **params):
        with self.engine(node).connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params)]

    def drop(self):
        for engine in self.engines.values():
            engine.dispose()
        for node in NODES:
            try:
                admin(node, "DROP DATABASE IF EXISTS %s" % self.name)
                if admin(node, "SHOW DATABASES LIKE 'glance_migration_lock'"):
                    admin(node, "DELETE FROM glance_migration_lock.leases WHERE name = :n", {"n": self.name})
                return
            except Exception:  # that node is down: another drops it
                continue


def run_modules(tmp_path, calls, timeout=300):
    """Run real modules through ansible-playbook: calls = [(module, args), ...] -> results."""
    import json
    import sys

    import yaml
    tasks = [{"name": "call %d" % i, "openstack_ops.glance.glance_db_%s" % module: args,
              "register": "result_%d" % i, "ignore_errors": True}
             for i, (module, args) in enumerate(calls)]
    out = tmp_path / ("results-%s.json" % uuid.uuid4().hex[:6])
    tasks.append({"name": "Write every result", "ansible.builtin.copy": {
        "dest": str(out), "mode": "0600",
        "content": "{{ [%s] | to_json }}" % ", ".join("result_%d" % i for i in range(len(calls)))}})
    playbook = tmp_path / ("play-%s.yml" % uuid.uuid4().hex[:6])
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)],
        capture_output=True, text=True, timeout=timeout, check=False,
        env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def assert_one_clear_msg(result, *expected):
    msg = result.get("msg", "")
    assert result.get("failed") is True, result
    assert "Traceback" not in msg and "\n" not in msg.strip(), msg
    assert "exception" not in result or "Traceback" not in str(result.get("module_stderr", "")), result
    for text in expected:
        assert text in msg, (text, msg)
    return msg


def seed_pre_ocata_fast(db, count):
    """seed.seed_pre_ocata's rows, generated by the server (INSERT ... SELECT from
    MariaDB's sequence engine): the same images, members and locations, and the
    same expected visibilities, in a second instead of a minute on Galera."""
    from seed import image_id
    iid = "CONCAT('00000000-0000-0000-0000-', LPAD(seq, 12, '0'))"
    last = count - 1
    statements = [
        "INSERT INTO images (id, name, size, status, is_public, created_at, deleted, min_disk, min_ram, "
        "protected) SELECT %s, CONCAT('image-', seq), 1024, 'active', seq %% 5 = 0, CURRENT_TIMESTAMP, "
        "seq %% 7 = 0, 0, 0, 0 FROM seq_0_to_%d" % (iid, last),
    ]
    for kind, member, deleted in ((2, "tenant-a", 0), (3, "tenant-b", 1), (4, "tenant-c", 1), (4, "tenant-d", 0)):
        statements.append(
            "INSERT INTO image_members (image_id, member, can_share, created_at, deleted, status) "
            "SELECT %s, '%s', 0, CURRENT_TIMESTAMP, %d, 'accepted' FROM seq_0_to_%d WHERE seq %% 5 = %d"
            % (iid, member, deleted, last, kind))
    statements.append(
        "INSERT INTO image_locations (image_id, value, created_at, deleted, meta_data, status) "
        "SELECT %s, CONCAT('file:///images/', seq), CURRENT_TIMESTAMP, 0, "
        "IF(seq %% 2, '{\"backend\": \"fast\"}', '{\"store\": \"fast\"}'), 'active' FROM seq_0_to_%d"
        % (iid, last))
    with db.engine(1).begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement.replace("%", "%%"))  # no parameters: a bare %
    return dict((image_id(n), "public" if n % 5 == 0 else ("shared" if n % 5 in (2, 4) else "private"))
                for n in range(count))
