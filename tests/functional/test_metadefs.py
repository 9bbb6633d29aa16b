"""Metadata definitions: our load, unload and export against real glance-manage 33.0.0.

Twin databases on each engine; after each step both hold the same metadef_*
rows, compared by natural key (json_schema parsed, ids and timestamps
ignored). The steps walk Glance's shipped files, then a changed copy of them
with each of Glance's modes, then unload. Glance 33's export_metadefs crashes
under SQLAlchemy 2, so our export is checked by round trip through Glance's
load. Needs the oracle virtualenv (tests/parity/oracle-venv).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import metadefs, phases
import test_interop

glance_manage = test_interop.glance_manage  # the oracle fixture, shared with test_interop
_glance = test_interop._glance


@pytest.fixture(scope="session")
def glance_files(glance_manage):
    """Real Glance's shipped metadefs files, in the oracle virtualenv (read there, never copied in)."""
    files = Path(glance_manage).resolve().parents[1] / "etc" / "glance" / "metadefs"
    assert files.is_dir(), "real Glance's metadefs files are missing: %s" % files
    return files


# Natural key columns first, then the compared columns; per table.
ROWS_SQL = {
    "metadef_namespaces":
        "SELECT namespace, display_name, description, visibility, protected, owner FROM metadef_namespaces",
    "metadef_resource_types": "SELECT name, protected FROM metadef_resource_types",
    "metadef_namespace_resource_types":
        "SELECT n.namespace, r.name, a.properties_target, a.prefix FROM metadef_namespace_resource_types a "
        "JOIN metadef_namespaces n ON n.id = a.namespace_id JOIN metadef_resource_types r ON r.id = a.resource_type_id",
    "metadef_properties":
        "SELECT n.namespace, p.name, p.json_schema FROM metadef_properties p "
        "JOIN metadef_namespaces n ON n.id = p.namespace_id",
    "metadef_objects":
        "SELECT n.namespace, o.name, o.description, o.required, o.json_schema FROM metadef_objects o "
        "JOIN metadef_namespaces n ON n.id = o.namespace_id",
    "metadef_tags":
        "SELECT n.namespace, t.name FROM metadef_tags t JOIN metadef_namespaces n ON n.id = t.namespace_id",
}
KEY_WIDTH = {"metadef_namespaces": 1, "metadef_resource_types": 1}
WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def metadef_rows(db):
    """{table: {natural key: other columns}}; json_schema parsed."""
    result = {}
    with db.engine.connect() as conn:
        for table, sql in ROWS_SQL.items():
            width = KEY_WIDTH.get(table, 2)
            rows = {}
            for row in conn.execute(sa.text(sql)):
                row = tuple(json.loads(v) if table in ("metadef_properties", "metadef_objects") and i == len(row) - 1
                            else v for i, v in enumerate(row))
                key = row[:width]
                assert key not in rows, "%s: duplicate natural key %r" % (table, key)
                rows[key] = row[width:]
            result[table] = rows
    return result


def compare(ours, theirs, step, report, only_resource_types=None):
    """Assert equal rows; record rows compared and differences per table."""
    a, b = metadef_rows(ours), metadef_rows(theirs)
    if only_resource_types is not None:
        for rows in (a, b):
            rows["metadef_resource_types"] = dict(
                (k, v) for k, v in rows["metadef_resource_types"].items() if k[0] in only_resource_types)
    problems = []
    for table in ROWS_SQL:
        keys = set(a[table]) | set(b[table])
        differing = sorted((k for k in keys if a[table].get(k, "missing") != b[table].get(k, "missing")), key=repr)
        report.append((ours.engine_name, step, table, len(keys), len(differing)))
        problems += ["%s %s: ours %r, glance %r" % (table, k, a[table].get(k, "missing"),
                                                    b[table].get(k, "missing")) for k in differing[:5]]
    assert not problems, "%s: rows differ from Glance's:\n%s" % (step, "\n".join(problems))
    return a


def changed_copy(glance_files, directory):
    """Glance's files with namespaces and their entries added, changed and removed."""
    shutil.copytree(glance_files, directory)

    def edit(name, change):
        path = directory / name
        document = json.loads(path.read_text())
        change(document)
        path.write_text(json.dumps(document, indent=2))

    def libvirt(d):
        d["display_name"] = "Libvirt, changed"
        d["description"] = "A changed description."
        first, second = sorted(d["properties"])[:2]
        d["properties"][first]["title"] = "A changed title"
        del d["properties"][second]
        d["properties"]["x_test_added"] = {"title": "Added", "type": "string", "enum": ["a", "b"]}
        d["resource_type_associations"][0]["prefix"] = "changed_"
        d["resource_type_associations"].append({"name": "OS::Test::Added", "prefix": "t_"})
        d["tags"] = [{"name": "tag-a"}, {"name": "tag-b"}]

    def dbms(d):
        d["objects"][0]["description"] = "A changed object."
        d["objects"][1]["properties"]["x_test"] = {"type": "integer"}
        del d["objects"][2]
        d["objects"].append({"name": "Added object", "description": "new", "properties": {"p": {"type": "string"}}})
        d["resource_type_associations"] = d["resource_type_associations"][:-1]

    edit("compute-libvirt.json", libvirt)
    edit("software-databases.json", dbms)
    (directory / "compute-watchdog.json").unlink()  # its namespace stays in the database
    (directory / "x-test-added.json").write_text(json.dumps({
        "namespace": "OS::Test::Added", "display_name": "Added", "description": "A namespace of the test.",
        "visibility": "public", "protected": False, "owner": "someone",
        "resource_type_associations": [{"name": "OS::Glance::Image", "properties_target": "image"}],
        "properties": {"x_one": {"type": "boolean"}},
        "objects": [{"name": "An object", "properties": {"x_two": {"type": "string"}}}],
        "tags": [{"name": "only-tag"}],
    }))
    return directory


def count_writes(engine):
    seen = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def before(conn, cursor, statement, parameters, context, executemany):
        if WRITE.match(statement):
            seen.append(statement.split()[0])
    return seen


def our_load(db, path, **modes):
    """Check mode (writes nothing, plans what the load then does), load, then a second load (no change, no write)."""
    writes = count_writes(db.engine)
    planned = metadefs.load(db.engine, str(path), check_mode=True, **modes)
    assert writes == []
    done = metadefs.load(db.engine, str(path), **modes)
    assert done.changes == planned.changes
    assert done.changed == bool(writes)
    del writes[:]
    again = metadefs.load(db.engine, str(path), **modes)
    assert not again.changed and writes == [], "a second load wrote: %s" % writes
    return done


def glance_load(glance_manage, tmp_path, db, path, *flags):
    code, output = _glance(glance_manage, tmp_path, db.url, "load_metadefs", "--path", str(path), *flags)
    assert code == 0, output
    assert "Traceback" not in output, output


MODES = [  # (step, our options, glance-manage flags); in this order, over the changed copy
    ("changed, no merge", {}, ()),
    ("changed, merge", {"merge": True}, ("--merge",)),
    ("changed, merge + prefer_new", {"merge": True, "prefer_new": True}, ("--merge", "--prefer_new")),
    ("changed, merge + overwrite", {"merge": True, "overwrite": True}, ("--merge", "--overwrite")),
]


@pytest.mark.parametrize("engine_name", ["sqlite", "mysql", "postgresql"])
def test_same_rows_as_glance_manage(make_database, glance_manage, glance_files, tmp_path, engine_name):
    ours, theirs, round_trip = (make_database(engine_name) for twin in range(3))
    for db in (ours, theirs, round_trip):
        phases.run(db.engine, "sync")
    report = []

    result = our_load(ours, glance_files)
    glance_load(glance_manage, tmp_path, theirs, glance_files)
    rows = compare(ours, theirs, "plain load", report)
    assert len(rows["metadef_namespaces"]) == len(list(glance_files.glob("*.json")))
    assert result.changes["created"]["namespaces"] == sorted(k[0] for k in rows["metadef_namespaces"])

    changed = changed_copy(glance_files, tmp_path / "changed")
    for step, options, flags in MODES:
        result = our_load(ours, changed, **options)
        glance_load(glance_manage, tmp_path, theirs, changed, *flags)
        compare(ours, theirs, step, report)
        if step == "changed, merge + prefer_new":
            assert ("OS::Compute::Libvirt", "x_test_added") not in result.changes["updated"]["properties"]
            assert "OS::Compute::Libvirt" in result.changes["updated"]["namespaces"]
        if step == "changed, merge + overwrite":  # the removed entries go now, and only now
            assert result.changes["deleted"]["objects"] and result.changes["deleted"]["properties"]
            assert result.changes["deleted"]["resource_type_associations"]
    assert ("OS::Compute::Watchdog",) in metadef_rows(ours)["metadef_namespaces"]

    # Export, then Glance's load of our files into a fresh twin gives the same rows.
    exported = tmp_path / "exported"
    files = metadefs.export(ours.engine, str(exported))
    names = sorted(p.name for p in exported.iterdir())
    assert names == sorted(ns + ".json" for (ns,) in metadef_rows(ours)["metadef_namespaces"])
    assert set(files.values()) == {"created"}
    assert set(metadefs.export(ours.engine, str(exported)).values()) == {"unchanged"}
    glance_load(glance_manage, tmp_path, round_trip, exported)
    # A resource type that lost its last association is not in any file, so only those still used count.
    used = set(k[1] for k in metadef_rows(ours)["metadef_namespace_resource_types"])
    compare(ours, round_trip, "export round trip", report, only_resource_types=used)

    # Unload on both.
    result = metadefs.unload(ours.engine)
    assert result.changed
    _code, output = _glance(glance_manage, tmp_path, theirs.url, "unload_metadefs")
    assert _code == 0, output
    rows = compare(ours, theirs, "unload", report)
    assert not any(rows.values())
    writes = count_writes(ours.engine)
    assert not metadefs.unload(ours.engine).changed and writes == []

    print("\nmetadefs oracle comparison (%s): step, table, rows compared, differences" % engine_name)
    for engine, step, table, compared, differing in report:
        print("  %s | %s | %s | %d | %d" % (engine, step, table, compared, differing))


def test_export_never_overwrites_a_different_file_unless_forced(database, glance_files, tmp_path):
    phases.run(database.engine, "sync")
    metadefs.load(database.engine, str(glance_files / "compute-libvirt.json"))
    target = tmp_path / "out" / "OS::Compute::Libvirt.json"
    target.parent.mkdir()
    target.write_text("{}")
    with pytest.raises(metadefs.MetadefsError, match="force"):
        metadefs.export(database.engine, str(target.parent))
    assert target.read_text() == "{}"
    assert metadefs.export(database.engine, str(target.parent), force=True) == {str(target): "updated"}
    assert json.loads(target.read_text())["namespace"] == "OS::Compute::Libvirt"


def test_a_load_with_nothing_to_do_is_read_with_the_driver_alone(database, glance_files, tmp_path):
    phases.run(database.engine, "sync")
    assert metadefs.settled_direct(database.url, str(glance_files)) is None  # everything to load
    metadefs.load(database.engine, str(glance_files))
    settled = metadefs.settled_direct(database.url, str(glance_files))
    assert settled is not None and not settled.changed
    assert settled.after == metadefs.load(database.engine, str(glance_files), check_mode=True).after
    changed = changed_copy(glance_files, tmp_path / "changed")
    assert metadefs.settled_direct(database.url, str(changed)) is None
    with pytest.raises(metadefs.MetadefsError, match="need merge"):
        metadefs.settled_direct(database.url, str(glance_files), prefer_new=True)


class _Killed(Exception):
    pass


def test_a_load_that_dies_half_way_leaves_nothing_and_a_rerun_completes(database, glance_files):
    phases.run(database.engine, "sync")
    seen = []

    @sa.event.listens_for(database.engine, "before_cursor_execute")
    def die_at_the_100th_insert(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT"):
            seen.append(statement)
            if len(seen) == 100:
                raise _Killed()

    with pytest.raises(_Killed):
        metadefs.load(database.engine, str(glance_files))
    sa.event.remove(database.engine, "before_cursor_execute", die_at_the_100th_insert)
    for table in ROWS_SQL:
        assert database.scalar("SELECT count(*) FROM %s" % table) == 0, table
    assert metadefs.load(database.engine, str(glance_files)).changed
    assert not metadefs.load(database.engine, str(glance_files), check_mode=True).changed


def test_refusals_write_nothing(make_database, glance_files, tmp_path):
    db = make_database("sqlite")
    with pytest.raises(metadefs.MetadefsError, match="Run glance_db_sync first"):
        metadefs.load(db.engine, str(glance_files))
    assert not Path(db.engine.url.database).exists()  # not even an empty SQLite file
    phases.run(db.engine, "sync")
    broken = tmp_path / "broken"
    shutil.copytree(glance_files, broken)
    (broken / "zz-broken.json").write_text('{"namespace": "OS::Broken", ')
    with pytest.raises(metadefs.MetadefsError, match="zz-broken.json"):
        metadefs.load(db.engine, str(broken))
    (broken / "zz-broken.json").write_text('{"display_name": "no namespace"}')
    with pytest.raises(metadefs.MetadefsError, match="zz-broken.json.*namespace"):
        metadefs.load(db.engine, str(broken))
    with pytest.raises(metadefs.MetadefsError, match="does not exist"):
        metadefs.load(db.engine, str(tmp_path / "nowhere"))
    for modes in ({"prefer_new": True}, {"overwrite": True}, {"merge": True, "prefer_new": True, "overwrite": True}):
        with pytest.raises(metadefs.MetadefsError, match="prefer_new"):
            metadefs.load(db.engine, str(glance_files), **modes)
    assert db.scalar("SELECT count(*) FROM metadef_namespaces") == 0


ROLE_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    glance_db_connection: "{url}"
    glance_db_backup: false
  tasks:
    - name: main syncs and loads the files
      ansible.builtin.include_role:
        name: openstack_ops.glance.glance_db
      vars:
        glance_db_metadefs_path: "{path}"
    - name: the load ran after the sync
      ansible.builtin.assert:
        that: glance_db_metadefs_result is changed
    - name: the metadefs entry point with the same files
      ansible.builtin.include_role:
        name: openstack_ops.glance.glance_db
        tasks_from: metadefs
      vars:
        glance_db_metadefs_path: "{path}"
    - name: the second load found nothing to do
      ansible.builtin.assert:
        that:
          - glance_db_metadefs_result is not changed
          - glance_db_metadefs_result.counts.namespaces == {namespaces}
    - name: a path set that does not exist
      block:
        - name: metadefs with a missing path
          ansible.builtin.include_role:
            name: openstack_ops.glance.glance_db
            tasks_from: metadefs
          vars:
            glance_db_metadefs_path: "{path}/nowhere"
        - name: not reached
          ansible.builtin.fail:
            msg: a missing glance_db_metadefs_path was not refused
      rescue:
        - name: the refusal names the path
          ansible.builtin.assert:
            that: ansible_failed_result.msg is search('nowhere does not exist')
    - name: metadefs with the default path, which this host may not have
      ansible.builtin.include_role:
        name: openstack_ops.glance.glance_db
        tasks_from: metadefs
    - name: without /etc/glance/metadefs the load is skipped
      ansible.builtin.assert:
        that: glance_db_metadefs_result is skipped
      when: not {default_exists}
"""


def test_role_main_loads_metadefs_after_the_sync(make_database, glance_files, tmp_path):
    db = make_database("sqlite")
    playbook = tmp_path / "play.yml"
    playbook.write_text(ROLE_PLAY.format(
        url=db.url, path=glance_files, namespaces=len(list(glance_files.glob("*.json"))),
        default_exists=Path(metadefs.DEFAULT_PATH).is_dir()))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook)],
        capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false"))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert db.scalar("SELECT count(*) FROM metadef_namespaces") == len(list(glance_files.glob("*.json")))
