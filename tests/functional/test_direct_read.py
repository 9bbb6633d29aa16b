"""The read with the driver alone (glance_db_facts' fast path) says exactly what
the read through SQLAlchemy says, or steps aside."""

from __future__ import annotations

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, state
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.direct import (
    parse_plain_url,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import ConnectionFailed
from seed import seed_pre_ocata


def _same_or_none(db):
    direct = state.read_direct(db.url)
    if direct is not None:
        assert direct.as_facts() == state.read(db.engine).as_facts()
    return direct


def test_empty_and_head_are_read_directly(database):
    assert _same_or_none(database) is not None
    phases.run(database.engine, "sync")
    facts = _same_or_none(database).as_facts()
    assert facts["up_to_date"] and facts["check_exit_code"] == 0


@pytest.mark.parametrize("version", ["liberty", "mitaka02", "ocata_expand01", "rocky_expand02",
                                     "train_contract01"])
def test_older_databases_read_alike(database, version):
    phases.run(database.engine, "sync", version=version)
    if version == "mitaka02":
        seed_pre_ocata(database)
    _same_or_none(database)


def test_pending_data_migration_is_left_to_sqlalchemy(online_database):
    db = online_database
    phases.run(db.engine, "sync", version="mitaka02")
    seed_pre_ocata(db)
    phases.run(db.engine, "expand")
    assert state.read_direct(db.url) is None
    assert state.read(db.engine).pending


def test_foreign_database_reads_alike(database):
    database.execute("CREATE TABLE something (id INTEGER PRIMARY KEY)")
    assert _same_or_none(database).foreign


def test_unreachable_server_is_reported_at_once():
    # SQLAlchemy would meet the same refusal, after as long a wait again.
    with pytest.raises(ConnectionFailed, match=r"check that the server at 127\.0\.0\.1:1 is running") as failed:
        state.read_direct("mysql+pymysql://nobody:secret@127.0.0.1:1/glance")
    assert "secret" not in str(failed.value)


@pytest.mark.parametrize("url", [
    "mysql+pymysql://glance:pw@db/glance?charset=utf8&connect_timeout=5",
    "mysql+pymysql://glance:pw@/glance",
    "postgresql://glance@db/gl%61nce",
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite:///file:glance.db?mode=ro&uri=true",
    "oracle://glance:pw@db/glance",
])
def test_urls_only_sqlalchemy_can_open_are_left_to_it(url):
    assert parse_plain_url(url) is None


def test_plain_url_parts():
    url = parse_plain_url("mariadb+pymysql://glance:p%40ss@db.example.org:3307/glance")
    assert (url.backend, url.username, url.password, url.host, url.port, url.database) == (
        "mysql", "glance", "p@ss", "db.example.org", 3307, "glance")
    assert url.render_as_string() == "mysql://glance:***@db.example.org:3307/glance"
    assert parse_plain_url("sqlite:////var/lib/glance/glance.sqlite").database == \
        "/var/lib/glance/glance.sqlite"


def _run_module(module, url, tmp_path, check_mode=False):
    """Run a module file as Ansible would (its arguments as JSON); return (result, imported modules)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    args = tmp_path / ("%s.json" % module)
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"connection": url, "_ansible_check_mode": check_mode}}))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(repo / "plugins" / "modules" / ("glance_db_%s.py" % module)),
         str(args)], capture_output=True, text=True, check=False,
        env={"PYTHONPATH": str(repo / ".build" / "collections"), "PATH": "/usr/bin:/bin"})
    imported = set(line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line)
    return json.loads(done.stdout), imported


def _third_party(imported):
    return sorted(name for name in imported if name.split(".")[0] in ("sqlalchemy", "alembic"))


@pytest.mark.parametrize("engine_name", ["sqlite", "mysql", "postgresql"])
def test_phase_with_nothing_to_do_answers_without_sqlalchemy(make_database, engine_name, tmp_path):
    db = make_database(engine_name)
    result, imported = _run_module("sync", db.url, tmp_path, check_mode=True)
    assert result["changed"] is True and result["plan"]["revisions"]  # a plan needs the full path
    assert _third_party(imported)
    phases.run(db.engine, "sync")
    for module in ("sync",) if engine_name != "sqlite" else ("sync", "expand", "migrate", "contract"):
        result, imported = _run_module(module, db.url, tmp_path)
        assert result.get("failed") is None and result["changed"] is False, result
        assert result["msg"] == phases.UP_TO_DATE
        assert result["glance_db"] == dict(state.read(db.engine).as_facts(), connection_source="connection")
        assert _third_party(imported) == [], (module, _third_party(imported))
