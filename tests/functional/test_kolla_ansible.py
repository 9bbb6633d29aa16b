"""The kolla-ansible guide's examples, unchanged, with kolla-ansible 23.0.0's own files.

docs/examples/kolla-ansible/ runs as the guide says: kolla's own multinode
inventory, a second inventory directory holding the example's inventory.yml and a
link to kolla's group_vars, and -e @globals.yml -e @passwords.yml, where
passwords.yml is kolla's etc_examples file with the Glance password filled in and
globals.yml says only what an operator's would: the VIP, the interface, the
release, and (kolla's use_preconfigured_databases) a database user and name of
the test's own. kolla's files come from the pinned wheel (kolla_files.py).

What kolla has and this machine lacks stands in, outside the examples:
- every host of multinode connects locally, through an interpreter wrapper that
  tells the stand-in tools which host they run on;
- `docker` is a stand-in for the container engine: `exec glance_api` prints the
  Glance version the host runs, and create/cp/rm give the glance-api image's
  /etc/glance/metadefs (real Glance 33's files, from the oracle virtualenv);
- `kolla-ansible` is a stand-in whose deploy-containers --limit HOST makes HOST
  run Glance 33.0.0;
- the Glance API health check is a small HTTP server on the port kolla's
  glance_api_port names.
MariaDB is the shared test server, reached as kolla's first mariadb host at its
api_interface (lo) address, port kolla's mariadb_port.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import yaml

import glance_client
import kolla_files
from needs import unavailable
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, state

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples" / "kolla-ansible"
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"

# The container engine: a host's glance_api container is its state file.
DOCKER = r'''#!/bin/sh
state="%(state)s"
host="${STANDIN_HOST:?no STANDIN_HOST: not run through a stand-in host}"
echo "$host docker $*" >> "$state/calls.log"
case "$1" in
exec)
    [ "$2" = glance_api ] && [ -f "$state/$host/glance-version" ] || { echo "Error: No such container: $2" >&2; exit 1; }
    cat "$state/$host/glance-version" ;;
create) echo "$5" > "$state/$host/created-image" ;;
cp) mkdir -p "$3" && cp "%(metadefs)s"/*.json "$3"/ ;;
rm) rm -f "$state/$host/created-image" ;;
*) echo "stand-in docker: unexpected $1" >&2; exit 2 ;;
esac
'''

# kolla-ansible: deploy-containers --limit HOST recreates HOST's glance_api from the new image.
KOLLA_ANSIBLE = r'''#!/bin/sh
state="%(state)s"
echo "kolla-ansible $*" >> "$state/calls.log"
command="$1"; host=""
while [ $# -gt 0 ]; do [ "$1" = --limit ] && host="$2"; shift; done
case "$command" in
pull) ;;
deploy-containers) [ -n "$host" ] && echo 33.0.0 > "$state/$host/glance-version" ;;
*) echo "stand-in kolla-ansible: unexpected $command" >&2; exit 2 ;;
esac
'''


@pytest.fixture(scope="module")
def kolla():
    """share/kolla-ansible of the pinned wheel."""
    try:
        return kolla_files.share()
    except RuntimeError as exc:
        return unavailable(exc, "kolla-ansible's files")


@pytest.fixture(scope="module")
def real_metadefs():
    """Real Glance 33's metadefs files (the oracle virtualenv), as the glance-api image has them."""
    try:
        python = glance_client.oracle_python()
    except RuntimeError as exc:
        return unavailable(exc, "real Glance's virtualenv")
    files = Path(python).parents[1] / "etc" / "glance" / "metadefs"
    assert sorted(files.glob("*.json")), files
    return files


@pytest.fixture
def health_port():
    """A port whose /healthcheck answers 200, as a running glance_api's does."""
    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
            self.send_response(200 if self.path == "/healthcheck" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):  # quiet  pylint: disable=arguments-differ
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def glance_user(make_database):
    """A database of the test's own and a user with kolla's grant on it (ALL on the database only)."""
    db = make_database("mysql")
    user, password = "kolla_%s" % uuid.uuid4().hex[:10], "pw-%s" % uuid.uuid4().hex[:16]
    db.execute("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'" % (user, password))
    try:
        db.execute("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%'" % (db.name, user))
        yield db, user, password
    finally:
        db.execute("DROP USER IF EXISTS '%s'@'%%'" % user)


class Deployment(object):
    """/etc/kolla as an operator has it, plus the stand-ins for kolla's hosts and tools."""

    def __init__(self, kolla, tmp_path, db, user, password, metadefs, health_port):
        self.kolla, self.tmp, self.db = kolla, tmp_path, db
        self.etc = tmp_path / "etc-kolla"
        self.state = tmp_path / "state"
        (self.etc / "glance-db").mkdir(parents=True)
        self.state.mkdir()
        # The guide's steps: kolla's multinode, the example's inventory beside kolla's group_vars.
        shutil.copy(kolla / "ansible" / "inventory" / "multinode", self.etc / "multinode")
        shutil.copy(EXAMPLES / "inventory.yml", self.etc / "glance-db" / "inventory.yml")
        (self.etc / "glance-db" / "group_vars").symlink_to(kolla / "ansible" / "group_vars")
        passwords = yaml.safe_load((kolla / "etc_examples" / "kolla" / "passwords.yml").read_text())
        assert "glance_database_password" in passwords
        passwords["glance_database_password"] = password
        (self.etc / "passwords.yml").write_text(yaml.safe_dump(passwords))
        self.globals = {
            "kolla_internal_vip_address": "127.0.0.1", "network_interface": "lo",
            "openstack_release": "2026.2", "glance_api_port": str(health_port),
            "use_preconfigured_databases": "yes", "use_common_mariadb_user": "yes",
            "database_user": user, "glance_database_name": db.name,
        }
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self._tool("docker", DOCKER % {"state": self.state, "metadefs": metadefs})
        self._tool("kolla-ansible", KOLLA_ANSIBLE % {"state": self.state})
        self.hosts = self._stand_ins()

    def _tool(self, name, text):
        path = self.bin / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def _stand_ins(self):
        """Every host of kolla's multinode, local, through a wrapper naming it to the stand-in tools."""
        listed = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i",
                                 str(self.etc / "multinode"), "--list"],
                                capture_output=True, text=True, check=True, timeout=120).stdout
        listed = json.loads(listed)
        hosts = sorted(set(listed["_meta"]["hostvars"]).union(
            *[group.get("hosts", []) for name, group in listed.items() if name != "_meta"]))
        assert "control01" in hosts and "localhost" in hosts, hosts
        found = {}
        for host in hosts:
            (self.state / host).mkdir()
            wrapper = self.state / host / "python"
            wrapper.write_text('#!/bin/sh\nSTANDIN_HOST=%s exec %s "$@"\n' % (host, sys.executable))
            wrapper.chmod(0o755)
            found[host] = {"ansible_connection": "local", "ansible_python_interpreter": str(wrapper)}
        path = self.tmp / "stand-ins.yml"
        path.write_text(yaml.safe_dump({"all": {"hosts": found}}))
        return found

    def runs(self, host, version):
        (self.state / host / "glance-version").write_text(version + "\n")

    def version(self, host):
        path = self.state / host / "glance-version"
        return path.read_text().strip() if path.exists() else None

    def calls(self):
        path = self.state / "calls.log"
        return path.read_text().splitlines() if path.exists() else []

    def play(self, playbook, *args):
        """The guide's command line, with the stand-ins' inventory last; every task's result per host."""
        (self.etc / "globals.yml").write_text(yaml.safe_dump(self.globals))
        recorded = self.tmp / "results.json"
        if recorded.exists():
            recorded.unlink()
        done = subprocess.run(
            [PLAYBOOK, "-i", str(self.etc / "multinode"), "-i", str(self.etc / "glance-db"),
             "-i", str(self.tmp / "stand-ins.yml"),
             "-e", "@%s" % (self.etc / "globals.yml"), "-e", "@%s" % (self.etc / "passwords.yml"),
             str(EXAMPLES / playbook)] + list(args),
            capture_output=True, text=True, timeout=900, check=False, cwd=str(self.tmp),
            env=dict(os.environ, PATH="%s:%s" % (self.bin, os.environ["PATH"]), ANSIBLE_NOCOLOR="1",
                     ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
                     ANSIBLE_CALLBACKS_ENABLED="record_results", RECORD_RESULTS_FILE=str(recorded)))
        report = json.loads(recorded.read_text()) if recorded.exists() else None
        return report, done


def task_results(report, name):
    return [(host, result) for each in report["tasks"] if each["name"].split(" : ")[-1] == name
            for host, result in each["hosts"].items()]


def failures(report):
    return [(host, result.get("msg")) for each in report["tasks"] for host, result in each["hosts"].items()
            if result.get("failed")]


@pytest.fixture
def deployment(kolla, tmp_path, glance_user, real_metadefs, health_port):
    db, user, password = glance_user
    return Deployment(kolla, tmp_path, db, user, password, real_metadefs, health_port)


def test_the_guide_loads_kolla_names_and_adds_no_host(deployment):
    """kolla's own groups stay as they are: the example inventory adds no host to glance-api."""
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(deployment.etc / "multinode"),
         "-i", str(deployment.etc / "glance-db"), "--list"],
        capture_output=True, text=True, check=True, timeout=120).stdout
    groups = json.loads(listed)

    def members(group):
        node = groups.get(group, {})
        return set(node.get("hosts", [])).union(*[members(child) for child in node.get("children", [])])

    assert members("glance-api") == {"control01", "control02", "control03"}
    assert members("mariadb") == {"control01", "control02", "control03"}


def test_bootstrap_syncs_and_loads_the_image_metadefs_through_a_galera_node(deployment, real_metadefs):
    deployment.globals["glance_db_metadefs_path"] = str(deployment.tmp / "metadefs")
    deployment.globals["glance_db_backup_dir"] = str(deployment.tmp / "backups")
    report, done = deployment.play("bootstrap.yml")
    assert done.returncode == 0 and report, (done.stdout[-4000:], done.stderr[-2000:])

    facts = state.read(deployment.db.engine).as_facts()
    assert facts["up_to_date"] is True, facts
    # Every namespace Glance ships, out of the glance-api image of kolla's tag for this release.
    namespaces = deployment.db.rows("SELECT COUNT(*) FROM metadef_namespaces")[0][0]
    assert namespaces == len(list(real_metadefs.glob("*.json"))), namespaces
    created = [line for line in deployment.calls() if " docker create " in line]
    assert created == ["control01 docker create --name glance_db_metadefs "
                       "quay.io/openstack.kolla/glance-api:2026.2-rocky-10"], deployment.calls()
    assert not (deployment.state / "control01" / "created-image").exists()  # the container was removed
    # The database tasks ran once, on the deploy host, through the first mariadb host's address.
    synced = task_results(report, "Sync the database to heads")
    assert len(synced) == 1 and synced[0][1].get("_ansible_delegated_vars", {}).get("ansible_delegated_host") == "localhost", \
        synced
    assert not (deployment.tmp / "backups").exists()  # a fresh database needs no dump


def test_rolling_upgrade_upgrades_glance_api_hosts_only_and_contract_waits_for_them(deployment):
    # A 2023.2 cloud (Glance 27.0.0; its database at 2023.1's heads) moving to 2026.2 (Glance 33.0.0).
    phases.run(deployment.db.engine, "sync", version="2023_1_contract01")
    deployment.globals["glance_db_backup_dir"] = str(deployment.tmp / "backups")
    deployment.runs("control01", "27.0.0")

    report, done = deployment.play("rolling-upgrade.yml", "--tags", "preflight,backup,expand")
    assert done.returncode == 0 and report, (done.stdout[-4000:], done.stderr[-2000:])
    facts = state.read(deployment.db.engine).as_facts()
    assert facts["expand"]["at_head"] and facts["next_step"] == "contract", facts
    assert len(list((deployment.tmp / "backups").glob("glance-%s-*.sql" % deployment.db.name))) == 1

    # control01, the only Glance API host (kolla's glance_api_hosts with the file backend), is behind.
    report, done = deployment.play("rolling-upgrade.yml", "--tags", "contract")
    assert done.returncode != 0 and report, done.stdout[-4000:]
    refused = [msg for _host, msg in failures(report)]
    assert len(refused) == 1 and refused[0].startswith("Contract refused: 1 Glance API host(s)"), refused
    assert "control01 (2023.2)" in refused[0] and "control02" not in refused[0], refused
    assert state.read(deployment.db.engine).as_facts()["contract"]["at_head"] is False

    report, done = deployment.play("rolling-upgrade.yml", "--tags", "nodes,contract")
    assert done.returncode == 0 and report, (done.stdout[-4000:], done.stderr[-2000:])
    assert deployment.version("control01") == "33.0.0"
    assert [line for line in deployment.calls() if line.startswith("kolla-ansible")] == [
        "kolla-ansible pull -i /etc/kolla/multinode --tags glance --limit control01",
        "kolla-ansible deploy-containers -i /etc/kolla/multinode --tags glance --limit control01"]
    said = dict((host, result.get("msg")) for host, result in task_results(report, "Leave alone a host that runs no Glance API")
                if not result.get("skipped"))
    assert set(said) == {"control02", "control03"}, said
    summary = [result["msg"] for _host, result in task_results(report, "Summarise the rollout once the last batch is done")
               if not result.get("skipped")]
    assert summary == ["1 of 1 host(s) upgraded to 2026.2: control01 (2023.2 -> 2026.2)."], summary
    assert state.read(deployment.db.engine).as_facts()["up_to_date"] is True
