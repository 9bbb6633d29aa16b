"""Real glance-manage 33.0.0 carries on from our databases, and we from its.

Needs the throwaway virtualenv with real Glance (tests/parity/oracle-venv makes
it on first use, about a minute; reused after).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from parity import HEAD, differences
from seed import seed_pre_ocata, visibilities

ORACLE_VENV_SCRIPT = Path(__file__).resolve().parents[1] / "parity" / "oracle-venv"


@pytest.fixture(scope="session")
def glance_manage():
    venv = subprocess.run(["bash", str(ORACLE_VENV_SCRIPT)], capture_output=True, text=True,
                          check=False)
    assert venv.returncode == 0, "cannot make real Glance's virtualenv:\n" + venv.stderr
    return str(Path(venv.stdout.strip().splitlines()[-1]) / "bin" / "glance-manage")


def _glance(glance_manage, tmp_path, url, *args):
    """Run real glance-manage against ``url``; return (exit code, stdout and stderr)."""
    conf = tmp_path / "glance-api.conf"
    # Real Glance reads psycopg2 URLs; ours are psycopg (3).
    conf.write_text("[database]\nconnection = %s\n" % url.replace("+psycopg:", "+psycopg2:"))
    done = subprocess.run([glance_manage, "--config-file", str(conf), "db"] + list(args),
                          capture_output=True, text=True, cwd=str(tmp_path), check=False)
    return done.returncode, done.stdout + "\n" + done.stderr


def test_real_glance_finds_our_sync_up_to_date(database, glance_manage, tmp_path):
    phases.run(database.engine, "sync")
    code, output = _glance(glance_manage, tmp_path, database.url, "version")
    assert code == 0 and output.split("\n")[0].strip() == HEAD, output
    code, output = _glance(glance_manage, tmp_path, database.url, "sync")
    assert code == 0 and "Database is up to date" in output, output
    if database.engine_name != "postgresql":  # Glance refuses `db check` on PostgreSQL
        code, output = _glance(glance_manage, tmp_path, database.url, "check")
        assert code == 0, output


@pytest.mark.parametrize("stop_at", ["mitaka02", "pike_contract01", "rocky_expand02"])
def test_we_finish_what_real_glance_started(database, glance_manage, tmp_path, stop_at):
    code, output = _glance(glance_manage, tmp_path, database.url, "upgrade", "--version", stop_at)
    assert code == 0, output
    phases.run(database.engine, "sync")
    assert differences(database.engine, database.engine_name, HEAD) == ""


def test_real_glance_continues_after_our_expand(online_database, glance_manage, tmp_path):
    db = online_database
    phases.run(db.engine, "sync", version="mitaka02")
    expected = seed_pre_ocata(db)
    phases.run(db.engine, "expand")
    phases.run(db.engine, "migrate")
    code, output = _glance(glance_manage, tmp_path, db.url, "check")
    assert code == 5, output  # contract is next, as for us
    code, output = _glance(glance_manage, tmp_path, db.url, "contract")
    assert code == 0, output
    assert visibilities(db) == expected
    assert differences(db.engine, db.engine_name, HEAD) == ""
