"""An openstack-ansible deployment as the example playbooks see it, made of OSA's own files.

OSA's inventory is dynamic (dynamic_inventory.py over openstack_user_config.yml);
here it is a static one with the group names of OSA's env.d and OSA's
inventory/group_vars beside it, as they are beside dynamic_inventory.py. The
vendored files are in tests/vendor/openstack-ansible (README there: which
repository and commit). The `openstack-ansible` wrapper is mimicked: it runs
ansible-playbook with `-e @FILE` for every ${OSA_CONFIG_DIR}/user_*.yml and
exports OSA_VERSION and OSA_CLONE_ROOT.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VENDOR = REPO / "tests" / "vendor" / "openstack-ansible"
OSA = VENDOR / "openstack-ansible"
OS_GLANCE = VENDOR / "openstack-ansible-os_glance"
PLUGINS = VENDOR / "openstack-ansible-plugins"
EXAMPLES = REPO / "docs" / "examples" / "openstack-ansible"
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

# Each env.d file, and the containers made of it with their management_address
# (the API stand-ins each get an address of their own for the health check).
CONTAINERS = {
    "glance.yml": ["127.0.0.11", "127.0.0.12", "127.0.0.13"],
    "utility.yml": ["127.0.0.21"],
}


def wrapper_loads_user_files():
    """The vendored wrapper's own line: an `-e @FILE` for every user_*.yml, in ls order."""
    script = (OSA / "scripts" / "openstack-ansible.sh.txt").read_text()
    return 'for i in $(ls ${OSA_CONFIG_DIR}/user_*.yml); do echo -ne "-e @$i "; done' in script


def static_inventory(directory):
    """OSA's groups (env.d) with container-named hosts, and OSA's group_vars beside them."""
    groups, hosts = {}, {}
    for env_file, addresses in CONTAINERS.items():
        skel = yaml.safe_load((OSA / "inventory" / "env.d" / env_file).read_text())
        (container, spec), = skel["container_skel"].items()
        for index, address in enumerate(addresses, 1):
            name = "infra%d_%s-%08x" % (index, container, index)
            hosts[name] = {"ansible_connection": "local", "management_address": address}
            groups.setdefault(container, set()).add(name)
            for component in spec["contains"]:
                groups.setdefault(component, set()).add(name)
    children = {}
    for skel_file in CONTAINERS:
        skel = yaml.safe_load((OSA / "inventory" / "env.d" / skel_file).read_text())
        for component, spec in skel["component_skel"].items():
            for parent in spec["belongs_to"]:
                children.setdefault(parent, set()).add(component)
    tree = {name: {"hosts": {host: None for host in sorted(members)}} for name, members in groups.items()}
    for parent, kids in children.items():
        tree.setdefault(parent, {})["children"] = {kid: None for kid in sorted(kids)}
    inventory = {"all": {"hosts": hosts, "children": tree,
                         # openstack_user_config.yml's global_overrides, as the dynamic inventory gives them
                         "vars": {"internal_lb_vip_address": "127.0.0.1"}}}
    directory.mkdir(parents=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory))
    shutil.copytree(OSA / "inventory" / "group_vars", directory / "group_vars")
    return directory / "hosts.yml", inventory


def hosts_of(inventory, group):
    """The hosts of ``group``, through its child groups."""
    node = inventory["all"]["children"][group]
    found = set(node.get("hosts") or {})
    for child in node.get("children") or {}:
        found.update(hosts_of(inventory, child))
    return sorted(found)


class Deployment(object):
    """A tmp /etc/openstack_deploy, an OSA checkout and stand-in hosts, run through the wrapper."""

    def __init__(self, tmp_path, osa_version):
        self.tmp = tmp_path
        self.osa_version = osa_version
        self.inventory, self.groups = static_inventory(tmp_path / "osa-inventory")
        self.config_dir = tmp_path / "openstack_deploy"
        self.config_dir.mkdir()
        self.clone_root = tmp_path / "openstack-ansible"
        (self.clone_root / "playbooks").mkdir(parents=True)
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.installs = tmp_path / "installs.log"

    def api_hosts(self):
        return hosts_of(self.groups, "glance_api")

    def utility_host(self):
        return hosts_of(self.groups, "utility_all")[0]

    def host_root(self, host):
        return self.tmp / "hosts" / host

    def write_user_files(self, variables, secrets):
        (self.config_dir / "user_variables.yml").write_text(yaml.safe_dump(variables))
        (self.config_dir / "user_secrets.yml").write_text(yaml.safe_dump(secrets))

    def link_glance_etc(self, host, venv):
        """/etc/glance of ``host`` -> ``venv``/etc/glance, as os_glance links it in source installs."""
        link = self.host_root(host) / "etc" / "glance"
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(Path(venv) / "etc" / "glance")

    def stand_in_openstack_ansible(self, new_venv):
        """An `openstack-ansible` on PATH that "installs" the new venv on its --limit host, and says so."""
        script = self.bin / "openstack-ansible"
        script.write_text(textwrap.dedent("""\
            #!%(python)s
            import json, os, sys
            args = sys.argv[1:]
            host = args[args.index("--limit") + 1]
            link = os.path.join(%(hosts)r, host, "etc", "glance")
            os.unlink(link)
            os.symlink(os.path.join(%(venv)r, "etc", "glance"), link)
            with open(%(log)r, "a") as log:
                log.write(json.dumps({"host": host, "args": args, "cwd": os.getcwd(),
                                      "osa_version": os.environ.get("OSA_VERSION")}) + "\\n")
            """) % {"python": sys.executable, "hosts": str(self.tmp / "hosts"), "venv": str(new_venv),
                    "log": str(self.installs)})
        script.chmod(0o755)

    def run(self, playbook, *args, wrapper=True, timeout=600):
        """ansible-playbook as `openstack-ansible` runs it (wrapper=False: plain, without OSA's environment)."""
        command = [PLAYBOOK]
        env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_RETRY_FILES_ENABLED="false",
                   PATH="%s:%s" % (self.bin, os.environ["PATH"]))
        if wrapper:
            for user_file in sorted(self.config_dir.glob("user_*.yml")):
                command += ["-e", "@%s" % user_file]
            env.update(OSA_VERSION=self.osa_version, OSA_CLONE_ROOT=str(self.clone_root),
                       OSA_CONFIG_DIR=str(self.config_dir))
        else:
            env.pop("OSA_VERSION", None)
        command += ["-i", str(self.inventory), "-i", str(EXAMPLES / "inventory.yml"), str(playbook)] + list(args)
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                              cwd=str(self.tmp), env=env)


def stand_in_venv(directory, glance_version):
    """A virtualenv whose glance package (metadata only) is ``glance_version``, with an etc/glance."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True)
    purelib = subprocess.run([str(directory / "bin" / "python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    info = Path(purelib) / ("glance-%s.dist-info" % glance_version)
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: glance\nVersion: %s\n" % glance_version)
    (directory / "etc" / "glance" / "metadefs").mkdir(parents=True)
    return directory


class HealthChecks(object):
    """A Glance /healthcheck on each address, one port for all; records who was asked."""

    def __init__(self, addresses):
        self.asked = []
        probe = socket.socket()
        probe.bind((addresses[0], 0))
        self.port = probe.getsockname()[1]
        probe.close()
        asked = self.asked

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                asked.append((self.server.server_address[0], self.path))
                self.send_response(200 if self.path == "/healthcheck" else 404)
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

        self.servers = [http.server.ThreadingHTTPServer((address, self.port), Handler) for address in addresses]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()


def role_default(path, name):
    """The text of ``name``'s value in a vendored defaults file, as written (not rendered)."""
    value = yaml.safe_load(path.read_text())[name]
    return value if isinstance(value, str) else yaml.safe_dump(value).strip()


def tasks_header_count(log, name):
    return len(re.findall(r"^TASK \[%s\]" % re.escape(name), log, re.MULTILINE))
