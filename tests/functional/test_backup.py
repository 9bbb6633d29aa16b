"""glance_db_backup: the dump restores to the same schema and rows, on every engine; the
URL's TLS options reach the dump tool; the dump never writes through a planted link."""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import stat
import subprocess
from urllib.parse import urlencode

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import backup, phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.connection import resolve_url
from parity import schema_dump
from private_server import private_mariadb, start_private_postgresql_tls  # noqa: F401  pylint: disable=unused-import
from seed import seed_pre_ocata
from test_bad_input import _run_playbook


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


def _run_tool(argv, environ_update, pass_fds):
    """What AnsibleModule.run_command does for the module."""
    done = subprocess.run(argv, env=dict(os.environ, **environ_update), pass_fds=pass_fds, capture_output=True,
                          text=True, check=False)
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
    # no .partial left; the dump's record beside it
    assert sorted(p.name for p in dest.iterdir()) == [os.path.basename(taken["path"]),
                                                      os.path.basename(taken["path"]) + ".json"]

    restored = make_database(database.engine_name)
    _restore(taken["path"], restored)
    assert schema_dump.dump(restored.engine) == schema_dump.dump(database.engine)
    assert _images(restored) == _images(database)

    second = backup.take(database.engine.url, str(dest), _run_tool)
    assert second["path"] != taken["path"]  # a second dump never overwrites the first


def _need(tool):
    if not shutil.which(tool):  # the CI machine has it; say so elsewhere
        if os.environ.get("CI"):
            pytest.fail("%s is not installed (CI requires it)" % tool, pytrace=False)
        pytest.skip("%s is not installed" % tool)


def test_tls_options_reach_mysqldump(private_mariadb, tmp_path):
    """A REQUIRE X509 user is backed up with the URL's client certificate, over TLS;
    without it, the module says the account may require TLS and how to give it."""
    _need("mysqldump")
    with private_mariadb(tls=True) as server:
        server.execute("CREATE DATABASE glance_tls")
        server.execute("CREATE TABLE glance_tls.images (id VARCHAR(36) PRIMARY KEY)")
        server.execute("INSERT INTO glance_tls.images VALUES ('tls-image-1')")
        log = server.dir / "general.log"
        server.execute("SET GLOBAL general_log_file = '%s'" % log)
        server.execute("SET GLOBAL general_log = ON")
        dest = tmp_path / "backups"
        dest.mkdir()
        with_tls = server.url("glance_tls", user=server.x509_user, tls=True)

        taken = backup.take(resolve_url(with_tls), str(dest), _run_tool)

        with open(taken["path"]) as dump:
            assert "tls-image-1" in dump.read()
        connects = [line for line in log.read_text().splitlines()
                    if "Connect" in line and server.x509_user in line]
        assert connects and all("using SSL/TLS" in line for line in connects), connects

        without_tls = server.url("glance_tls", user=server.x509_user)
        results = _run_playbook(tmp_path, [
            ("TLS options given", "backup", {"connection": with_tls, "dest_dir": str(dest)}, {}),
            ("no TLS options", "backup", {"connection": without_tls, "dest_dir": str(dest)}, {}),
        ])
    given, missing = results
    assert not given.get("failed") and os.path.isfile(given["backup"]["path"]), given
    msg = missing["msg"]
    assert missing.get("failed") and "requires TLS (REQUIRE SSL or X509)" in msg and "ssl_cert=" in msg, msg
    assert "the server refused this user: if its account requires TLS" in msg, msg
    assert "Traceback" not in msg and "\n" not in msg.strip(), msg


def test_tls_options_reach_pg_dump(make_database, tmp_path):
    """sslmode=require against a server without SSL: pg_dump itself refuses, so the
    option reached it (without it pg_dump would dump over plain TCP)."""
    _need("pg_dump")
    db = make_database("postgresql")
    if db.scalar("SHOW ssl") == "on":
        pytest.skip("the PostgreSQL server offers SSL: sslmode=require cannot show the option reached pg_dump")
    db.execute("CREATE TABLE images (id VARCHAR(36) PRIMARY KEY)")
    with pytest.raises(backup.BackupError, match=r"pg_dump failed .*SSL") as refused:
        backup.take(resolve_url(db.url + "?sslmode=require"), str(tmp_path), _run_tool)
    print(refused.value)


def test_a_link_planted_under_the_next_dump_name_is_never_written_through(database, tmp_path):
    if database.engine_name != "sqlite":
        _need("mysqldump" if database.engine_name == "mysql" else "pg_dump")
    database.execute("CREATE TABLE images (id VARCHAR(36) PRIMARY KEY)")
    url = database.engine.url
    victim = tmp_path / "victim"
    victim.write_text("not yours to overwrite\n")
    dest = tmp_path / "shared"
    dest.mkdir()
    # The next dump's name holds the second it starts: plant one for every second it may start in.
    name = os.path.splitext(os.path.basename(url.database))[0]
    now = datetime.datetime.now(datetime.timezone.utc)
    planted = []
    for second in range(-2, 60):
        stamp = (now + datetime.timedelta(seconds=second)).strftime("%Y%m%dT%H%M%SZ")
        link = dest / ("glance-%s-%s.%s.partial" % (name, stamp, backup.EXTENSIONS[database.engine_name]))
        link.symlink_to(victim)
        planted.append(link)

    with pytest.raises(backup.BackupError, match=r"Refusing to write the dump to %s/glance-%s-\d{8}T\d{6}Z\.\w+\.partial: "
                       r"that name exists" % (dest, name)):
        backup.take(url, str(dest), _run_tool)

    assert victim.read_text() == "not yours to overwrite\n"
    assert sorted(dest.iterdir()) == sorted(planted)  # left as found: not ours to remove
    assert all(link.is_symlink() for link in planted)


def test_tls_options_reach_pg_dump_through_a_client_certificate(tmp_path):
    """On a PostgreSQL that lets in only TLS with a client certificate, the URL's sslmode,
    sslrootcert, sslcert and sslkey get the dump taken, through the module too."""
    _need("pg_dump")
    with start_private_postgresql_tls() as (port, files):
        base = "postgresql+psycopg://postgres@127.0.0.1:%d/postgres" % port
        with_tls = base + "?" + urlencode(dict(files, sslmode="verify-full"))
        dest = tmp_path / "backups"
        dest.mkdir()

        taken = backup.take(resolve_url(with_tls), str(dest), _run_tool)

        with pytest.raises(backup.BackupError, match="pg_dump failed .*client certificate"):
            backup.take(resolve_url(base), str(dest), _run_tool)
        listed = subprocess.run(["pg_restore", "--list", taken["path"]], capture_output=True, text=True,
                                check=True).stdout
        assert "dbname: postgres" in listed, listed
        results = _run_playbook(tmp_path, [
            ("TLS options given", "backup", {"connection": with_tls, "dest_dir": str(dest)}, {})])
    assert not results[0].get("failed") and os.path.isfile(results[0]["backup"]["path"]), results[0]
