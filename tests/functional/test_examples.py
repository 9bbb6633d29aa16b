"""The openstack-ansible guide's example playbooks, run as shipped, with OSA's own files.

docs/examples/openstack-ansible/ runs unchanged against a static inventory
with OSA's group names and OSA's own inventory/group_vars (vendored, see
tests/vendor/openstack-ansible/README.md), through a stand-in of OSA's
`openstack-ansible` wrapper (`-e @` every user_*.yml, OSA_VERSION): only what
an OSA operator has differs from production (user_variables.yml,
user_secrets.yml, the inventory's hosts). Every host connects locally. The
database is a fresh one on the test MariaDB; the Glance venvs are a stand-in
for the old release and real Glance 33 (the oracle virtualenv) for the new.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, state

import osa_deploy
from osa_deploy import EXAMPLES, OS_GLANCE, PLUGINS, Deployment
import test_interop

PLAYBOOKS = ("bootstrap.yml", "rolling-upgrade.yml")
# OSA 34 (master) deploys 2026.2, whose Glance is 33.0.0.
OSA_VERSION = "34.0.0"
glance_manage = test_interop.glance_manage  # the oracle fixture, shared with test_interop
EXAMPLE_VARS = yaml.safe_load((EXAMPLES / "inventory.yml").read_text())["all"]["vars"]


def oracle_venv(glance_manage_path):
    return Path(glance_manage_path).resolve().parents[1]


def deployment(tmp_path, db, **more):
    """The deployment, its user files pointing at ``db`` (what an operator would set)."""
    osa = Deployment(tmp_path, OSA_VERSION)
    variables = {
        "galera_use_ssl": False,  # the test server has no TLS (OSA's release note: set it in user_variables.yml)
        "galera_root_user": "root",
        "glance_galera_user": "root",
        "glance_galera_database": db.name,
        "glance_db_python": sys.executable,
        # Each stand-in host's own filesystem, under tmp_path/hosts/HOST.
        "glance_etc_dir": str(tmp_path / "hosts") + "/{{ inventory_hostname }}/etc/glance",
        "glance_db_node_release_file": str(tmp_path / "hosts") + "/{{ inventory_hostname }}/glance_db.fact",
        "glance_db_metadefs_path": str(tmp_path / "utility" / "metadefs"),
        "glance_db_backup_dir": str(tmp_path / "utility" / "backups"),
    }
    variables.update(more)
    osa.write_user_files(variables, {"glance_container_mysql_password": "", "galera_root_password": ""})
    return osa


def rendered(osa, host, expression, extra=None):
    """``expression`` rendered for ``host`` with the deployment's variables (a debug task, no Python on it)."""
    play = osa.tmp / ("render-%d.yml" % len(list(osa.tmp.glob("render-*.yml"))))
    play.write_text(yaml.safe_dump([{"hosts": host, "gather_subset": ["!all", "min"], "vars": extra or {},
                                     "tasks": [{"ansible.builtin.debug": {"msg": expression}}]}]))
    done = osa.run(play)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout.split('"msg": ', 1)[1].split("\n", 1)[0].strip().strip('"')


def test_wrapper_stand_in_is_the_real_wrappers_rule():
    # The tests' wrapper passes -e @FILE for each user_*.yml: so does OSA's.
    assert osa_deploy.wrapper_loads_user_files()


def test_example_restates_os_glance_and_osa_defaults():
    defaults = yaml.safe_load((OS_GLANCE / "defaults" / "main.yml").read_text())
    for name in ("glance_galera_address", "glance_galera_database", "glance_galera_user", "glance_galera_use_ssl",
                 "glance_galera_ssl_ca_cert", "glance_galera_port", "glance_api_service_port", "glance_etc_dir"):
        assert EXAMPLE_VARS[name] == defaults[name], name
    source = yaml.safe_load((PLUGINS / "roles" / "install_defaults" / "defaults" / "source.yml").read_text())
    assert source["openstack_db_setup_host"] == "{{ openstack_service_setup_host }}"
    assert source["openstack_service_setup_host"] == "{{ groups['utility_all'][0] }}"
    assert "groups['utility_all'][0]" in EXAMPLE_VARS["glance_db_migration_host"]
    osa_play = yaml.safe_load((PLUGINS / "playbooks" / "glance.yml").read_text())
    assert "glance_api_serial" in next(play["serial"] for play in osa_play if "serial" in play)
    rolling = yaml.safe_load((EXAMPLES / "rolling-upgrade.yml").read_text())
    assert "glance_api_serial" in next(play["serial"] for play in rolling if "serial" in play)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_example_playbooks_pass_syntax_check(playbook, make_database, tmp_path):
    osa = deployment(tmp_path, make_database("mysql"))
    done = osa.run(EXAMPLES / playbook, "--syntax-check")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.parametrize("use_ssl,ca", [(False, ""), (True, ""), (True, "/etc/ssl/certs/galera-ca.pem")])
def test_connection_is_the_one_os_glance_writes(use_ssl, ca, make_database, tmp_path):
    db = make_database("mysql")
    osa = deployment(tmp_path, db, galera_use_ssl=use_ssl, galera_ssl_ca_cert=ca,
                     glance_galera_user="glance", galera_root_user="admin")
    host = osa.api_hosts()[0]
    template = (OS_GLANCE / "templates" / "glance-manage.conf.j2").read_text()
    line = next(line for line in template.splitlines() if line.startswith("connection = "))
    theirs = rendered(osa, host, line[len("connection = "):])
    ours = rendered(osa, host, "{{ glance_db_connection }}")
    assert ours == theirs, (ours, theirs)
    assert ours.endswith("/%s?charset=utf8%s" % (db.name, "&ssl_verify_cert=true" if use_ssl else "")
                         + ("&ssl_ca=" + ca if ca else ""))
    assert ours.startswith("mysql+pymysql://glance:@127.0.0.1:3306/")  # galera_address: the internal VIP
    admin = rendered(osa, host, "{{ glance_db_admin_connection }}")
    assert admin.startswith("mysql+pymysql://admin:@127.0.0.1:3306/?charset=utf8")  # galera_root_user


# OSA's version names its series (tests/vendor/openstack-ansible/README.md).
@pytest.mark.parametrize("osa_version,release", [
    ("29.2.0", "2024.1"), ("30.0.0", "2024.2"), ("31.1.2", "2025.1"), ("32.1.0", "2025.2"), ("33.0.1", "2026.1"),
    ("34.0.0.0b2.dev12", "2026.2"), ("undefined", "")])
def test_target_release_follows_osa_release_series(osa_version, release, make_database, tmp_path):
    osa = deployment(tmp_path, make_database("mysql"))
    assert rendered(osa, osa.api_hosts()[0], "[{{ glance_db_target_release }}]",
                    {"openstack_release": osa_version}) == "[%s]" % release


def test_rolling_upgrade_without_the_wrapper_refuses_naming_the_target_release(make_database, tmp_path):
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    before = state.read(db.engine).as_facts()["revisions"]
    osa = deployment(tmp_path, db)
    # Plain ansible-playbook: no OSA_VERSION, so openstack_release is "undefined".
    done = osa.run(EXAMPLES / "rolling-upgrade.yml", "-e", "@%s" % (osa.config_dir / "user_variables.yml"),
                   "-e", "@%s" % (osa.config_dir / "user_secrets.yml"), wrapper=False)
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-3000:]
    assert "glance_db_target_release is not set" in log and "openstack-ansible wrapper" in log, log[-3000:]
    assert "Traceback" not in log
    assert state.read(db.engine).as_facts()["revisions"] == before  # nothing ran


def test_bootstrap_syncs_and_loads_glances_metadefs_on_the_utility_host(make_database, glance_manage, tmp_path):
    db = make_database("mysql")
    osa = deployment(tmp_path, db)
    glance = oracle_venv(glance_manage)
    for host in osa.api_hosts():
        osa.link_glance_etc(host, glance)
    done = osa.run(EXAMPLES / "bootstrap.yml")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "-> %s]" % osa.utility_host() in log  # the database tasks ran on OSA's db setup host
    facts = state.read(db.engine).as_facts()
    assert facts["up_to_date"] is True, facts
    shipped = sorted(path.name for path in (glance / "etc" / "glance" / "metadefs").glob("*.json"))
    assert sorted(path.name for path in (tmp_path / "utility" / "metadefs").iterdir()) == shipped
    namespaces = db.rows("SELECT COUNT(*) FROM metadef_namespaces")[0][0]
    assert namespaces == len(shipped), (namespaces, len(shipped))
    assert not (tmp_path / "utility" / "backups").exists()  # a fresh database needs no dump


def test_rolling_upgrade_through_openstack_ansible(make_database, glance_manage, tmp_path):
    db = make_database("mysql")
    # A 2023.2 cloud: Glance 27 on every host, its database at the 2023.1 heads.
    phases.run(db.engine, "sync", version="2023_1_contract01")
    old = osa_deploy.stand_in_venv(tmp_path / "venvs" / "glance-28.4.0", "27.0.0")
    new = oracle_venv(glance_manage)  # real Glance 33.0.0: 2026.2
    health = osa_deploy.HealthChecks(["127.0.0.11", "127.0.0.12", "127.0.0.13"])
    try:
        osa = deployment(tmp_path, db, glance_api_service_port=health.port, glance_api_serial=[1, 2])
        for host in osa.api_hosts():
            osa.link_glance_etc(host, old)
        osa.stand_in_openstack_ansible(new)
        rolling = EXAMPLES / "rolling-upgrade.yml"

        done = osa.run(rolling, "--tags", "preflight,backup,expand")
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-4000:]
        assert "-> %s]" % osa.utility_host() in log
        facts = state.read(db.engine).as_facts()
        assert facts["expand"]["at_head"] and facts["next_step"] == "contract", facts
        dumps = list((tmp_path / "utility" / "backups").glob("glance-%s-*.sql" % db.name))
        assert len(dumps) == 1 and dumps[0].stat().st_size > 0, dumps

        # Every host still runs Glance 27 (2023.2), older than the contract head's 2024.1.
        done = osa.run(rolling, "--tags", "contract")
        log = done.stdout + done.stderr
        assert done.returncode != 0, log[-4000:]
        assert "Contract refused" in log and all("%s (2023.2)" % host in log for host in osa.api_hosts()), log[-4000:]
        assert state.read(db.engine).as_facts()["contract"]["at_head"] is False

        done = osa.run(rolling, "--tags", "nodes")
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-4000:]
        installs = [json.loads(line) for line in osa.installs.read_text().splitlines()]
        # glance_api_serial [1, 2]: the first host alone, then the other two together, in either order.
        hosts = [install["host"] for install in installs]
        assert hosts[:1] == osa.api_hosts()[:1] and sorted(hosts[1:]) == sorted(osa.api_hosts()[1:]), hosts
        for install in installs:
            assert install["args"] == ["os-glance-install.yml", "--limit", install["host"],
                                       "-e", '{"_glance_is_first_play_host": false}']
            assert install["cwd"] == str(osa.clone_root / "playbooks")
        # glance_api_serial [1, 2] from user_variables.yml: two batches.
        assert osa_deploy.tasks_header_count(log, "Upgrade this host (upgrade-node.yml) and record its release") == 2
        assert sorted(set(health.asked)) == [(address, "/healthcheck")
                                             for address in ("127.0.0.11", "127.0.0.12", "127.0.0.13")]
        for host in osa.api_hosts():
            marker = json.loads((osa.host_root(host) / "glance_db.fact").read_text())
            assert (marker["previous"], marker["release"]) == ("2023.2", "2026.2"), marker

        done = osa.run(rolling, "--tags", "contract")
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-4000:]
        assert state.read(db.engine).as_facts()["up_to_date"] is True
    finally:
        health.close()


def test_real_glance_reads_what_the_rollout_left(make_database, glance_manage, tmp_path):
    """The new venv's own glance-manage finds the database the examples made up to date."""
    db = make_database("mysql")
    osa = deployment(tmp_path, db)
    for host in osa.api_hosts():
        osa.link_glance_etc(host, oracle_venv(glance_manage))
    done = osa.run(EXAMPLES / "bootstrap.yml", "-e", '{"glance_db_metadefs_load": false}')
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    conf = tmp_path / "glance-manage.conf"
    conf.write_text("[database]\nconnection = %s\n" % db.url)
    checked = subprocess.run([glance_manage, "--config-file", str(conf), "db", "check"],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
