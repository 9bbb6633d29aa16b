"""glance_db_backup: the dump restores to the same schema and rows, on every engine."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import backup, phases
from parity import schema_dump
from seed import seed_pre_ocata


def _restore(dump, into):
    """Load a dump with the database's own client, as an operator would."""
    if into.engine_name == "mysql":
        with open(dump) as handle:
            subprocess.run(["mysql", "--protocol=TCP", "--host=127.0.0.1", "--user=root", into.name],
                           stdin=handle, check=True)
    elif into.engine_name == "postgresql":
        subprocess.run(["pg_restore", "--host=127.0.0.1", "--username=postgres", "--no-owner",
                        "--dbname=" + into.name, dump], check=True)
    else:
        shutil.copyfile(dump, into.engine.url.database)


def _run_tool(argv, environ_update):
    """What AnsibleModule.run_command does for the module."""
    done = subprocess.run(argv, env=dict(os.environ, **environ_update), capture_output=True, text=True,
                          check=False)
    return done.returncode, done.stdout, done.stderr


def _images(db):
    return db.rows("SELECT id, name, is_public, deleted FROM images ORDER BY id")


def test_dump_restores_to_the_same_database(database, make_database, tmp_path):
    if database.engine_name != "sqlite":
        tool = "mysqldump" if database.engine_name == "mysql" else "pg_dump"
        if not shutil.which(tool):  # the CI machine has both; say so elsewhere
            pytest.skip("%s is not installed" % tool)
    phases.run(database.engine, "sync", version="mitaka02")
    seed_pre_ocata(database, count=50)
    dest = tmp_path / "backups"
    dest.mkdir()

    taken = backup.take(database.engine.url, str(dest), _run_tool)

    assert taken["engine"] == database.engine_name
    assert os.path.dirname(taken["path"]) == str(dest)
    assert stat.S_IMODE(os.stat(taken["path"]).st_mode) == 0o600
    with open(taken["path"], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == taken["sha256"]
    assert taken["size"] == os.path.getsize(taken["path"]) > 0
    assert [p.name for p in dest.iterdir()] == [os.path.basename(taken["path"])]  # no .partial left

    restored = make_database(database.engine_name)
    _restore(taken["path"], restored)
    assert schema_dump.dump(restored.engine) == schema_dump.dump(database.engine)
    assert _images(restored) == _images(database)

    second = backup.take(database.engine.url, str(dest), _run_tool)
    assert second["path"] != taken["path"]  # a second dump never overwrites the first
