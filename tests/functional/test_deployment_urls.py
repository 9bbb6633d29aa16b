"""Each deployment tool's database URL, as it really is, through every module and the role.

kolla-ansible 23 writes ``...?ssl_ca=CA`` (glance-api.conf.j2, with
glance_database_enable_tls_internal) and openstack-ansible
``...?charset=utf8&ssl_verify_cert=true&ssl_ca=CA`` (os_glance's glance-api.conf.j2,
with galera_use_ssl). Both run here on a MariaDB of the test's own whose Glance user
is REQUIRE SSL (scripts/private-mariadb --tls: glance_ssl), so every run that
succeeds went over TLS. A no-op is answered by the driver alone (the fast path)
with either URL: those runs have SQLAlchemy made unimportable, and still succeed.

openstack-ansible's URL through PyMySQL: given ssl_verify_cert, PyMySQL builds its TLS
settings from its own arguments, where SQLAlchemy's dialect put no CA (it moved
ssl_ca into the ``ssl`` dict), so the server's certificate is checked against the
system's trust store; openstack-ansible installs its CA there. SSL_CERT_FILE points
at such a store here: the system's bundle plus the test CA.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, state
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.connection import create_engine, resolve_url
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import GRAPH
from private_server import start_private_mariadb, start_private_postgresql_tls
from test_bad_input import _run_playbook

REPO = Path(__file__).resolve().parents[2]
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
OLD_REVISION = "mitaka02"
MISSING_SQLALCHEMY = "SQLAlchemy and Alembic"
# One namespace, as Glance ships them (etc/glance/metadefs/compute-watchdog.json, shortened).
NAMESPACE = {"namespace": "OS::Compute::Watchdog", "display_name": "Watchdog Behavior",
             "description": "Compute drivers may enable watchdog behavior over instances.",
             "visibility": "public", "protected": True,
             "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"}],
             "properties": {"watchdog_action": {"title": "Watchdog Action", "type": "string",
                                                "enum": ["disabled", "reset", "poweroff", "pause", "none"]}}}


def kolla_url(server, database, ca=None):
    """kolla-ansible 23's [database] connection with glance_database_enable_tls_internal."""
    return "mysql+pymysql://%s@127.0.0.1:%d/%s?ssl_ca=%s" % (server.ssl_user, server.port, database,
                                                             ca or server.tls["ssl_ca"])


def osa_url(server, database):
    """openstack-ansible's (os_glance) with galera_use_ssl and galera_ssl_ca_cert."""
    return "mysql+pymysql://%s@127.0.0.1:%d/%s?charset=utf8&ssl_verify_cert=true&ssl_ca=%s" % (
        server.ssl_user, server.port, database, server.tls["ssl_ca"])


FORMS = {"kolla": kolla_url, "openstack-ansible": osa_url}


@pytest.fixture(scope="module")
def tls_server():
    """One private MariaDB with TLS for the file, its general log on (each login says
    whether it used TLS)."""
    with start_private_mariadb(tls=True) as server:
        assert server.ssl_user, "scripts/private-mariadb --tls made no REQUIRE SSL user"
        server.general_log = server.dir / "general.log"
        server.execute("SET GLOBAL general_log_file = '%s'" % server.general_log)
        server.execute("SET GLOBAL general_log = ON")
        yield server


def _database(server, name):
    server.execute("CREATE DATABASE %s" % name)
    return name


def _trust_store(server, directory):
    """The system's CA bundle plus the test CA, as openstack-ansible's hosts have it."""
    bundle = directory / "trust-store.pem"
    system = SYSTEM_BUNDLE.read_text() if SYSTEM_BUNDLE.exists() else ""
    bundle.write_text(system + Path(server.tls["ssl_ca"]).read_text())
    return str(bundle)


def _sqlalchemy_blocked(directory):
    """A PYTHONPATH on which SQLAlchemy and Alembic cannot be imported: a module run with
    it succeeds only through the driver-only fast path."""
    for name in ("sqlalchemy", "alembic"):
        package = directory / "blocked" / name
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text("raise ImportError('%s is blocked by the test')\n" % name)
    return str(directory / "blocked")


def _other_ca(directory):
    """A CA that signed nothing the server has."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=some other CA", "-keyout", str(directory / "other-ca-key.pem"), "-out",
                    str(directory / "other-ca.pem")], capture_output=True, check=True)
    return str(directory / "other-ca.pem")


def _metadefs_dir(directory):
    path = directory / "metadefs"
    path.mkdir()
    (path / "compute-watchdog.json").write_text(json.dumps(NAMESPACE))
    return str(path)


def _one_clear_msg(result, *expected):
    msg = result.get("msg", "")
    assert result.get("failed") is True, result
    assert "Traceback" not in msg and "\n" not in msg.strip(), msg
    for text in expected:
        assert text in msg, (text, msg)
    return msg


def _tls_logins(server, database):
    """The general log's logins of the REQUIRE SSL user into ``database``: (all, those over TLS)."""
    lines = [line for line in server.general_log.read_text().splitlines()
             if "Connect" in line and "%s@" % server.ssl_user in line and " on %s " % database in line]
    return lines, [line for line in lines if "using SSL/TLS" in line]


def _version_rows(server, database):
    return sorted(row[0] for row in server.execute("SELECT version_num FROM %s.alembic_version" % database))


@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_tools_url_through_every_module(tls_server, tmp_path, form):
    server = tls_server
    database = _database(server, "glance_urls_%s" % form.replace("-", "_"))
    url = FORMS[form](server, database)
    metadefs, backups = _metadefs_dir(tmp_path), tmp_path / "backups"
    backups.mkdir()
    trusted = {"SSL_CERT_FILE": _trust_store(server, tmp_path)}
    blocked = dict(trusted, PYTHONPATH=_sqlalchemy_blocked(tmp_path))
    other_option = url + "&connect_timeout=5"  # no deployment tool's: SQLAlchemy's to open
    env = {"environment": trusted}
    work = [
        ("sync to an old revision", "sync", {"connection": url, "version": OLD_REVISION}, env),
        ("expand", "expand", {"connection": url}, env),
        ("migrate", "migrate", {"connection": url}, env),
        ("contract", "contract", {"connection": url}, env),
        ("facts", "facts", {"connection": url}, env),
        ("purge", "purge", {"connection": url, "age_in_days": 1}, env),
        ("metadefs", "metadefs", {"connection": url, "path": metadefs}, env),
        ("backup", "backup", {"connection": url, "dest_dir": str(backups)}, env),
        ("an option of no tool's, with SQLAlchemy", "facts", {"connection": other_option}, env),
    ]
    # Nothing left to do: the driver alone answers, SQLAlchemy cannot even be imported.
    noop = [("no-op %s" % module, module, {"connection": url}, {"environment": blocked})
            for module in ("sync", "expand", "migrate", "contract", "facts")]
    noop += [("no-op metadefs", "metadefs", {"connection": url, "path": metadefs}, {"environment": blocked}),
             ("an option of no tool's, without SQLAlchemy", "facts", {"connection": other_option},
              {"environment": blocked})]
    results = _run_playbook(tmp_path, work + noop)
    by_name = dict((name, result) for (name, _module, _args, _kw), result in zip(work + noop, results))

    for name, result in list(by_name.items())[:len(work)]:
        assert not result.get("failed"), (name, result.get("msg"))
    assert by_name["sync to an old revision"]["glance_db"]["revisions"] == [OLD_REVISION]
    assert by_name["expand"]["changed"] and by_name["contract"]["changed"]
    assert by_name["facts"]["glance_db"]["up_to_date"] is True
    assert by_name["metadefs"]["changed"] is True
    assert os.path.getsize(by_name["backup"]["backup"]["path"]) > 0
    assert _version_rows(server, database) == GRAPH.rows_for(set(GRAPH.by_id))
    for name, _module, _args, _kw in noop[:-1]:
        result = by_name[name]
        assert not result.get("failed") and result["changed"] is False, (name, result.get("msg"))
    _one_clear_msg(by_name["an option of no tool's, without SQLAlchemy"], MISSING_SQLALCHEMY)
    logins, over_tls = _tls_logins(server, database)
    assert logins and logins == over_tls, [line for line in logins if line not in over_tls]


def test_refusals_are_one_clear_msg_from_the_fast_path_and_sqlalchemys_alike(tls_server, tmp_path):
    """A wrong CA (kolla's form), or openstack-ansible's form with the CA missing from the
    trust store: refused, by the driver-only read and through SQLAlchemy alike. The same
    REQUIRE SSL user with TLS turned off (ssl_disabled, an option the fast path leaves to
    SQLAlchemy) is refused by the server, and the msg names TLS."""
    server = tls_server
    database = _database(server, "glance_urls_refused")
    blocked = _sqlalchemy_blocked(tmp_path)
    untrusted = str(SYSTEM_BUNDLE) if SYSTEM_BUNDLE.exists() else _other_ca(tmp_path)
    wrong_ca = {"connection": kolla_url(server, database, ca=_other_ca(tmp_path))}
    osa = {"connection": osa_url(server, database)}
    without_tls = {"connection": "mysql+pymysql://%s@127.0.0.1:%d/%s?ssl_disabled=true" % (
        server.ssl_user, server.port, database)}
    cases = [
        ("kolla, wrong CA, driver alone", "facts", wrong_ca, {"environment": {"PYTHONPATH": blocked}}),
        ("kolla, wrong CA, SQLAlchemy", "sync", wrong_ca, {}),
        ("osa, CA not trusted, driver alone", "facts", osa,
         {"environment": {"PYTHONPATH": blocked, "SSL_CERT_FILE": untrusted}}),
        ("osa, CA not trusted, SQLAlchemy", "sync", osa, {"environment": {"SSL_CERT_FILE": untrusted}}),
        ("without TLS", "facts", without_tls, {}),
        ("without TLS, without SQLAlchemy", "facts", without_tls, {"environment": {"PYTHONPATH": blocked}}),
    ]
    results = _run_playbook(tmp_path, cases)
    for (name, _module, _args, _kw), result in list(zip(cases, results))[:4]:
        msg = _one_clear_msg(result, "certificate verify failed", "127.0.0.1:%d" % server.port)
        assert MISSING_SQLALCHEMY not in msg, (name, msg)
    refused, fell_back = results[4:]
    _one_clear_msg(refused, "Access denied for user '%s'" % server.ssl_user, "requires TLS (REQUIRE SSL or X509)")
    _one_clear_msg(fell_back, MISSING_SQLALCHEMY)
    logins, over_tls = _tls_logins(server, database)
    assert logins and not over_tls, logins  # the server saw logins without TLS only, and refused them
    assert server.execute("SHOW TABLES FROM %s" % database) == ()


def _import_recording_interpreter(directory):
    """A Python for the modules that records, per module run, whether it imported
    SQLAlchemy or Alembic (python -X importtime); and the file it writes to."""
    record = directory / "imports.log"
    wrapper = directory / "python-recording-imports"
    wrapper.write_text("""#!/bin/bash
# $1: the AnsiballZ file, named after the module it runs
err=$(mktemp)
%s -X importtime "$@" 2>"$err"
rc=$?
if grep -Eq '[|][[:space:]]+(sqlalchemy|alembic)([.][[:alnum:]_.]+)?$' "$err"; then used=sqlalchemy; else used=driver-only; fi
echo "$(basename "${1:-stdin}" .py) $used" >>%s
grep -v '^import time:' "$err" >&2
rm -f "$err"
exit $rc
""" % (sys.executable, record))
    wrapper.chmod(0o755)
    return str(wrapper), record


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_roles_main_entry_point_with_each_tools_url(tls_server, tmp_path, form):
    """playbooks/sync.yml: backup, sync and metadefs over TLS; run again, it has nothing
    to do, and its state read, sync and metadefs load answer with the driver alone."""
    server = tls_server
    database = _database(server, "glance_role_%s" % form.replace("-", "_"))
    url = FORMS[form](server, database)
    root = create_engine(resolve_url(server.url(database)))
    phases.run(root, "sync", version=OLD_REVISION)
    root.dispose()
    backups = tmp_path / "backups"
    backups.mkdir()
    python, imports = _import_recording_interpreter(tmp_path)
    trusted = dict(os.environ, SSL_CERT_FILE=_trust_store(server, tmp_path), ANSIBLE_LOCALHOST_WARNING="false")
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(REPO / "playbooks" / "sync.yml"),
            "-e", "glance_db_connection=%s" % url, "-e", "glance_db_backup_dir=%s" % backups,
            "-e", "glance_db_metadefs_path=%s" % _metadefs_dir(tmp_path), "-e", "ansible_python_interpreter=%s" % python]

    first = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, env=trusted)
    imports.unlink()
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, env=trusted)

    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert list(backups.glob("*.sql")), first.stdout[-3000:]
    assert _version_rows(server, database) == GRAPH.rows_for(set(GRAPH.by_id))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert phases.UP_TO_DATE in again.stdout and "Revisions applied: none" in again.stdout, again.stdout[-3000:]
    assert len(list(backups.glob("*.sql"))) == 1  # nothing to change, nothing backed up
    runs = [line.split() for line in imports.read_text().splitlines()]
    fast = [(module, used) for module, used in runs
            if module in ("AnsiballZ_glance_db_facts", "AnsiballZ_glance_db_sync", "AnsiballZ_glance_db_metadefs")]
    assert len(fast) >= 4 and all(used == "driver-only" for _module, used in fast), runs
    logins, over_tls = _tls_logins(server, database)
    assert logins and logins == over_tls, [line for line in logins if line not in over_tls]


def test_postgresql_tls_options_are_read_by_the_driver_alone(tmp_path):
    """sslmode, sslrootcert, sslcert and sslkey reach psycopg on the fast path: on a server
    that lets in only TLS with a client certificate, the state is read without SQLAlchemy."""
    with start_private_postgresql_tls() as (port, files):
        query = "sslmode=verify-full&sslrootcert=%(sslrootcert)s&sslcert=%(sslcert)s&sslkey=%(sslkey)s" % files
        admin = create_engine(resolve_url("postgresql+psycopg://postgres@127.0.0.1:%d/postgres?%s" % (port, query)))
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("CREATE DATABASE glance")
        admin.dispose()
        url = "postgresql+psycopg2://postgres@127.0.0.1:%d/glance?%s" % (port, query)
        engine = create_engine(resolve_url(url))
        phases.run(engine, "sync")
        direct = state.read_direct(url)
        assert direct is not None and direct.as_facts() == state.read(engine).as_facts()
        engine.dispose()
        blocked = {"environment": {"PYTHONPATH": _sqlalchemy_blocked(tmp_path)}}
        noop, = _run_playbook(tmp_path, [("no-op sync", "sync", {"connection": url}, blocked)])
    assert not noop.get("failed") and noop["changed"] is False, noop.get("msg")
