"""glance_db_restore, the way back: a backup, writes and an upgrade after it, then the restore gives
back the backed-up schema and every row, on every engine, and real glance-manage reads it. A damaged
dump is refused with nothing changed; a restore stopped half-way says so, and a re-run completes;
the role restores only when confirmed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import backup, phases, restore
from parity import differences, schema_dump
from seed import IMAGE_INSERT, MEMBER_INSERT, image_id, seed_pre_ocata
from test_backup import _need, _run_tool
from test_bad_input import _run_playbook
from test_interop import _glance, glance_manage  # noqa: F401  pylint: disable=unused-import

OLD = "mitaka02"  # before Ocata's data migration: an upgrade changes the schema and the rows


def every_row(db):
    """Every row of every table, alembic_version included, in a stable order."""
    rows = {}
    with db.engine.connect() as conn:
        quote = conn.dialect.identifier_preparer.quote
        for table in sa.inspect(conn).get_table_names():
            rows[table] = sorted(repr(tuple(row)) for row in conn.execute(sa.text("SELECT * FROM %s" % quote(table))))
    return rows


def snapshot(db):
    return schema_dump.dump(db.engine), every_row(db)


def write_after_the_backup(db):
    """What the API writes between the backup and the restore: new images, a member, a changed name."""
    with db.engine.begin() as conn:
        conn.execute(sa.text(IMAGE_INSERT), [dict(id=image_id(1000 + n), name="after-%d" % n, is_public=False,
                                                  deleted=False, protected=False) for n in range(5)])
        conn.execute(sa.text(MEMBER_INSERT), dict(image_id=image_id(1000), member="tenant-z", f=False, deleted=False))
        conn.execute(sa.text("UPDATE images SET name = 'renamed' WHERE id = :id"), dict(id=image_id(1)))


def upgrade(db):
    """To the heads: expand, migrate and contract where the engine runs them online, else sync."""
    if db.engine_name == "postgresql":
        phases.run(db.engine, "sync")
    else:
        for phase in ("expand", "migrate", "contract"):
            phases.run(db.engine, phase)


def client_needed(db):
    if db.engine_name != "sqlite":
        _need("mysqldump" if db.engine_name == "mysql" else "pg_dump")
        _need("mysql" if db.engine_name == "mysql" else "pg_restore")


def backed_up(db, tmp_path, count=40):
    """A database at OLD with rows, its dump, and its schema and rows at the time."""
    client_needed(db)
    phases.run(db.engine, "sync", version=OLD)
    seed_pre_ocata(db, count=count)
    dest = tmp_path / "backups"
    dest.mkdir(exist_ok=True)
    taken = backup.take(db.engine.url, str(dest), _run_tool)
    return taken, snapshot(db)


def test_round_trip_gives_back_the_backed_up_schema_and_rows(database, glance_manage, tmp_path):  # noqa: F811
    taken, saved = backed_up(database, tmp_path)
    assert taken["revisions"] == [OLD] and taken["rows"]["images"] == 40
    assert stat.S_IMODE(os.stat(taken["manifest"]).st_mode) == 0o600
    write_after_the_backup(database)
    upgrade(database)
    upgraded = snapshot(database)
    assert upgraded != saved

    result = restore.run(database.engine, _run_tool, path=taken["path"], force=True)

    assert snapshot(database) == saved
    assert differences(database.engine, database.engine_name, OLD) == ""  # and it is Glance's OLD schema
    assert result["before"]["revisions"] == list(upgraded[0]["alembic_version"])
    assert result["before"]["rows"]["images"] == 45
    assert result["after"]["revisions"] == [OLD] and result["after"]["rows"]["images"] == 40
    assert result["dump"]["sha256"] == taken["sha256"] == backup.sha256_of(taken["path"])  # read, never written
    code, output = _glance(glance_manage, tmp_path, database.url, "version")
    assert code == 0 and output.split("\n")[0].strip() == OLD, output
    print(result["msg"])


def test_a_damaged_dump_is_refused_and_nothing_changes(database, tmp_path):
    taken, saved = backed_up(database, tmp_path)
    upgrade(database)
    upgraded = snapshot(database)
    dump = Path(taken["path"])
    original = dump.read_bytes()

    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    dump.write_bytes(bytes(flipped))
    with pytest.raises(restore.RestoreRefused, match="does not have the sha256 its record gives .*nothing was changed"):
        restore.run(database.engine, _run_tool, path=str(dump), force=True)
    dump.write_bytes(original[:-10])
    with pytest.raises(restore.RestoreRefused, match=r"is %d bytes, but its record says %d" % (
            len(original) - 10, len(original))):
        restore.run(database.engine, _run_tool, path=str(dump), force=True)
    assert snapshot(database) == upgraded
    assert dump.read_bytes() == original[:-10]  # left as it was found

    dump.write_bytes(original)
    with pytest.raises(restore.RestoreRefused, match="holds tables .*revisions %s.*run again with force: true"
                       % upgraded[0]["alembic_version"][0]):
        restore.run(database.engine, _run_tool, path=str(dump))
    assert snapshot(database) == upgraded
    planned = restore.run(database.engine, _run_tool, path=str(dump), force=True, check_mode=True)
    assert planned["after"]["revisions"] == [OLD] and planned["msg"].startswith("Would replace")
    assert snapshot(database) == upgraded
    restore.run(database.engine, _run_tool, path=str(dump), force=True)
    assert snapshot(database) == saved


# A client that stops half-way: it loads half the dump, or reads a dump cut in half.
STOPS_HALF_WAY = {
    "mysql": '#!/bin/sh\nhead -c {half} | mysql "$@"\nexit 3\n',
    "postgresql": "#!{python}\nimport os, subprocess, sys\n"
                  "dump = open(sys.argv[-1], 'rb').read()\n"
                  "open('{cut}', 'wb').write(dump[:{half}])\n"
                  "sys.exit(subprocess.run(['pg_restore'] + sys.argv[1:-1] + ['{cut}']).returncode or 3)\n",
}


@pytest.mark.parametrize("engine_name", ["mysql", "postgresql"])
def test_a_restore_stopped_half_way_says_so_and_a_rerun_completes(make_database, engine_name, tmp_path):
    db = make_database(engine_name)
    taken, saved = backed_up(db, tmp_path, count=400)
    upgrade(db)
    client = tmp_path / "stops-half-way"
    client.write_text(STOPS_HALF_WAY[engine_name].format(half=taken["size"] // 2, python=sys.executable,
                                                         cut=tmp_path / "cut.dump"))
    client.chmod(0o755)
    tool = {"mysql": str(client)} if engine_name == "mysql" else {"pg_restore": str(client)}

    with pytest.raises(restore.RestoreFailed) as failed:
        restore.run(db.engine, _run_tool, path=taken["path"], force=True, **tool)

    msg = str(failed.value)
    print(msg)
    assert "failed half-way" in msg and "The dump is untouched" in msg and "run again with force: true" in msg, msg
    assert backup.sha256_of(taken["path"]) == taken["sha256"]
    left = every_row(db)
    if engine_name == "postgresql":
        assert "is empty" in msg and left == {}, left
    else:
        assert "loaded until it stopped" in msg and 0 < len(left) < len(saved[1]), sorted(left)
    result = restore.run(db.engine, _run_tool, path=taken["path"], force=True)
    assert snapshot(db) == saved
    assert result["after"]["revisions"] == [OLD]


def test_missing_dumps_and_records_get_a_clear_msg(make_database, tmp_path):
    db = make_database("sqlite")
    taken, saved = backed_up(db, tmp_path)
    no_record = tmp_path / "backups" / "copied.sqlite"
    no_record.write_bytes(Path(taken["path"]).read_bytes())
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    missing = str(tmp_path / "backups" / "glance-gone.sqlite")
    results = _run_playbook(tmp_path, [
        ("missing dump", "restore", {"connection": db.url, "path": missing, "force": True}, {}),
        ("no record", "restore", {"connection": db.url, "path": str(no_record), "force": True}, {}),
        ("no dump in the directory", "restore", {"connection": db.url, "backup_dir": str(empty_dir)}, {}),
        ("neither path nor backup_dir", "restore", {"connection": db.url}, {}),
        ("newest in the directory, check mode", "restore",
         {"connection": db.url, "backup_dir": str(tmp_path / "backups"), "force": True}, {"check_mode": True}),
    ])
    expected = ["The dump %s does not exist: give the path glance_db_backup returned" % missing,
                "has no record beside it (%s.json" % no_record,
                "No dump of the sqlite database %s in %s" % (db.engine.url.database, empty_dir),
                "Give either path",
                None]
    for (name, result), text in zip(zip(["missing", "record", "dir", "neither", "check"], results), expected):
        if text is None:
            assert not result.get("failed") and result["dump"]["path"] == taken["path"], result
            continue
        assert result.get("failed") and text in result["msg"], (name, result)
        assert "Traceback" not in result["msg"] and "\n" not in result["msg"].strip(), result
    assert snapshot(db) == saved


ROLE_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    glance_db_connection: "{url}"
    glance_db_backup_dir: "{backups}"
  tasks:
    - name: the backup entry point
      ansible.builtin.include_role:
        name: openstack_ops.glance.glance_db
        tasks_from: backup
    - name: an upgrade after it
      openstack_ops.glance.glance_db_sync:
        connection: "{url}"
    - name: without the confirmation
      block:
        - name: restore, not confirmed
          ansible.builtin.include_role:
            name: openstack_ops.glance.glance_db
            tasks_from: restore
        - name: not reached
          ansible.builtin.fail:
            msg: the restore ran without glance_db_restore_confirm
      rescue:
        - name: the refusal names the variable, and the plan was shown
          ansible.builtin.assert:
            that:
              - ansible_failed_result.msg is search('glance_db_restore_confirm=true')
              - glance_db_restore_plan.after.revisions == ['{old}']
    - name: restore, confirmed
      ansible.builtin.include_role:
        name: openstack_ops.glance.glance_db
        tasks_from: restore
      vars:
        glance_db_restore_confirm: true
    - name: the result says what was replaced by what
      ansible.builtin.assert:
        that:
          - glance_db_restore_result is changed
          - glance_db_restore_result.after.revisions == ['{old}']
          - glance_db_restore_result.before.revisions != ['{old}']
"""


def test_role_restores_the_newest_dump_only_when_confirmed(make_database, tmp_path):
    db = make_database("sqlite")
    phases.run(db.engine, "sync", version=OLD)
    seed_pre_ocata(db, count=20)
    saved = snapshot(db)
    playbook = tmp_path / "play.yml"
    playbook.write_text(ROLE_PLAY.format(url=db.url, backups=tmp_path / "backups", old=OLD))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)],
        capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false"))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert snapshot(db) == saved
