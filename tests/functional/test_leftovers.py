"""Every module sees what a stopped run left (issue 21, point 2): the facts report it and
name the module that clears it, no module answers "up to date" while it stands, the four
phases clear it under the migration lock before anything else (an offline sync and a phase
with nothing else to do too), purge and metadefs refuse while it stands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (
    metadefs, phases, purge, state as db_state)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import LeftoversFound
from parity import HEAD, differences
from seed import image_id, seed_pre_ocata, visibilities
from test_table_copy import _copy_of_images, _leftovers

PHASES = ("sync", "expand", "migrate", "contract")


def _at_head_with_a_leftover_copy(make_database):
    """A database at the heads whose images has a stopped copy: its table and its triggers."""
    db = make_database("mysql")
    phases.run(db.engine, "sync")
    with db.engine.connect() as conn:
        _copy_of_images(conn)
    assert len(_leftovers(db)) == 4
    return db


def test_an_offline_sync_clears_a_stopped_copy_before_its_revisions(make_database):
    """An expand stopped mid-copy, then glance_db_sync: the copy goes first, so no revision
    runs under its triggers and no Glance write fails after the sync."""
    db = make_database("mysql")
    phases.run(db.engine, "sync", version="mitaka02")
    expected = seed_pre_ocata(db)
    with db.engine.connect() as conn:
        _copy_of_images(conn)
    facts = db_state.read(db.engine).as_facts()
    assert facts["up_to_date"] is False and facts["next_step"] == "expand"
    assert [item["name"] for item in facts["run"]["leftovers"]] == [
        "_glance_new_images", "_glance_copy_delete_images", "_glance_copy_insert_images",
        "_glance_copy_update_images"]
    assert "Run glance_db_expand" in facts["run"]["msg"]
    outcome = phases.run(db.engine, "sync")
    assert outcome.changed
    assert outcome.msg.startswith("Cleared what a stopped run left (table _glance_new_images, triggers "
                                  "_glance_copy_delete_images, _glance_copy_insert_images, "
                                  "_glance_copy_update_images on images). "), outcome.msg
    assert outcome.msg.endswith("Database is synced successfully.")
    assert _leftovers(db) == []
    assert differences(db.engine, "mysql", HEAD) == ""
    assert visibilities(db) == expected
    with db.engine.begin() as conn:  # a release N write
        conn.execute(sa.text("INSERT INTO images (id, name, size, status, visibility, created_at, deleted, "
                             "min_disk, min_ram, protected, os_hidden) VALUES (:id, 'n', 1, 'active', "
                             "'public', CURRENT_TIMESTAMP, 0, 0, 0, 0, 0)"), dict(id=image_id(3000000)))


@pytest.mark.parametrize("phase", PHASES)
def test_no_phase_is_up_to_date_while_a_leftover_stands(make_database, phase):
    """At the heads, each phase would have nothing to do: with a leftover it is not settled
    from the driver-only read, check mode names what it would clear, and the run clears it
    (changed) before saying the database is up to date; the next run has nothing to do."""
    db = _at_head_with_a_leftover_copy(make_database)
    direct = db_state.read_direct(str(db.engine.url.render_as_string(hide_password=False)))
    assert direct is not None and direct.leftovers
    assert phases.settled(direct, phase) is None
    assert direct.as_facts()["up_to_date"] is False
    assert "Run glance_db_migrate" in direct.as_facts()["run"]["msg"]
    planned = phases.run(db.engine, phase, check_mode=True)
    assert not planned.plan.empty and planned.plan.as_dict()["leftovers"]
    assert planned.msg.startswith("Check mode, nothing written: %s would clear what a stopped run left "
                                  "(table _glance_new_images" % phase), planned.msg
    assert "up to date" not in planned.msg
    assert len(_leftovers(db)) == 4  # check mode wrote nothing
    outcome = phases.run(db.engine, phase)
    assert outcome.changed
    assert outcome.msg.startswith("Cleared what a stopped run left (table _glance_new_images")
    assert _leftovers(db) == []
    again = phases.run(db.engine, phase)
    assert not again.changed and again.msg == phases.UP_TO_DATE
    assert db_state.read(db.engine).as_facts()["up_to_date"] is True


def test_purge_and_metadefs_refuse_while_a_leftover_stands(make_database, tmp_path):
    db = _at_head_with_a_leftover_copy(make_database)
    namespace = tmp_path / "metadefs" / "OS_Test.json"
    namespace.parent.mkdir()
    namespace.write_text(json.dumps({"namespace": "OS::Test", "display_name": "Test", "visibility": "public",
                                     "protected": True, "properties": {"a": {"title": "A", "type": "string"}}}))
    with pytest.raises(LeftoversFound, match="Run glance_db_migrate"):
        purge.run(purge.Purge(db.engine, age_in_days=1))
    with pytest.raises(LeftoversFound, match="Run glance_db_migrate"):
        metadefs.load(db.engine, str(namespace.parent))
    assert metadefs.settled_direct(db.engine.url.render_as_string(hide_password=False),
                                   str(namespace.parent)) is None
    assert db.scalar("SELECT COUNT(*) FROM metadef_namespaces") == 0
    phases.run(db.engine, "migrate")  # clears them, and has nothing else to do
    purge.run(purge.Purge(db.engine, age_in_days=1))
    assert metadefs.load(db.engine, str(namespace.parent)).changed


def test_the_modules_say_it_in_one_msg(make_database, tmp_path):
    """Through Ansible: facts report the leftovers, purge refuses naming the module that clears
    them, and sync clears them (changed) and says so."""
    db = _at_head_with_a_leftover_copy(make_database)
    url = db.engine.url.render_as_string(hide_password=False)
    tasks = [
        {"openstack_ops.glance.glance_db_facts": {"connection": url}, "register": "facts"},
        {"openstack_ops.glance.glance_db_purge": {"connection": url, "age_in_days": 1},
         "register": "purged", "ignore_errors": True},
        {"openstack_ops.glance.glance_db_sync": {"connection": url}, "register": "synced"},
        {"ansible.builtin.copy": {"dest": str(tmp_path / "results.json"),
                                  "content": "{{ [facts, purged, synced] | to_json }}"}},
    ]
    playbook = tmp_path / "leftovers.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false",
                                   ANSIBLE_INVENTORY_UNPARSED_WARNING="false"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    facts, purged, synced = json.loads((tmp_path / "results.json").read_text())
    assert facts["glance_db"]["up_to_date"] is False
    assert "Run glance_db_migrate" in facts["glance_db"]["run"]["msg"]
    assert purged["failed"] and "Run glance_db_migrate" in purged["msg"] and "\n" not in purged["msg"]
    assert "Traceback" not in purged["msg"]
    assert synced["changed"] and synced["msg"].startswith("Cleared what a stopped run left")
    assert _leftovers(db) == []
