"""Unknown or contradictory state is refused everywhere (issue 21, point 5): alembic_version
rows no sequence of Glance's upgrades leaves, rows the schema contradicts, and unknown or
missing rows; purge and metadefs refuse exactly where the phases do, and the facts say so."""

from __future__ import annotations

import json

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import metadefs, phases, purge
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import state as db_state
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import GlanceDbError
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import CONTRACT, EXPAND, GRAPH
from parity import schema_dump  # tests/parity, on the path through parity.py


def _rows(db, rows):
    db.execute("DELETE FROM alembic_version")
    for row in rows:
        db.execute("INSERT INTO alembic_version (version_num) VALUES (:r)", r=row)


# (name, revision the schema is really at, alembic_version rows written over it, words of the refusal)
CASES = [
    ("a head beside an older expand", None, ["2024_1_expand01", "zed_expand01", "2024_1_contract01"],
     "no sequence of Glance's upgrades leaves"),
    ("mitaka02 beside the contract head", None, ["mitaka02", "2024_1_contract01"],
     "no sequence of Glance's upgrades leaves"),
    ("legacy ocata01 and pike01 on a mitaka02 schema", "mitaka02", ["ocata01", "pike01"],
     "no sequence of Glance's upgrades leaves"),
    ("pike01 on a mitaka02 schema", "mitaka02", ["pike01"],
     "pike_contract01 dropped artifacts, which the database has"),
    ("the contract head on an expanded schema", "2024_1_expand01", ["2024_1_contract01"],
     "pike_contract01 dropped artifacts, which the database has"),
    ("an expanded 2024.1 on a mitaka02 schema", "mitaka02", ["2023_1_contract01", "2024_1_expand01"],
     "2024_1_expand01 added node_reference, which the database lacks"),
    ("an unknown revision", None, ["2031_1_contract01"], "which this collection does not know"),
    ("an empty alembic_version", None, [], "but no alembic_version"),
    ("no alembic_version table", None, None, "but no alembic_version"),
    ("a Liberty database at legacy migration 40", "liberty", 40, "legacy Glance migration 40"),
]


@pytest.mark.parametrize("engine_name", ["sqlite", "mysql", "postgresql"])
@pytest.mark.parametrize("name,real,rows,words", CASES, ids=[c[0] for c in CASES])
def test_every_writing_module_refuses_and_facts_say_why(make_database, tmp_path, engine_name, name, real,
                                                        rows, words):
    db = make_database(engine_name)
    phases.run(db.engine, "sync", version=real) if real else phases.run(db.engine, "sync")
    if isinstance(rows, list):
        _rows(db, rows)
    else:
        db.execute("DROP TABLE alembic_version")
    if isinstance(rows, int):  # sqlalchemy-migrate's table, as Glance before Liberty left it
        db.execute("CREATE TABLE migrate_version (repository_id VARCHAR(250) PRIMARY KEY, "
                   "repository_path TEXT, version INTEGER)")
        db.execute("INSERT INTO migrate_version VALUES ('Glance Migrations', '/glance', :v)", v=rows)
    before = schema_dump.dump(db.engine)
    namespace = tmp_path / "OS_Test.json"
    namespace.write_text(json.dumps({"namespace": "OS::Test", "display_name": "Test", "properties": {}}))
    refusals = {}
    for phase in ("sync", "expand", "migrate", "contract"):
        if engine_name == "postgresql" and phase != "sync":
            continue  # refused for the engine first
        with pytest.raises(GlanceDbError) as refused:
            phases.run(db.engine, phase)
        refusals[phase] = str(refused.value)
    with pytest.raises(GlanceDbError) as refused:
        purge.run(purge.Purge(db.engine, age_in_days=1))
    refusals["purge"] = str(refused.value)
    with pytest.raises(GlanceDbError) as refused:
        metadefs.load(db.engine, str(namespace))
    refusals["metadefs"] = str(refused.value)
    assert all(words in text for text in refusals.values()), refusals
    assert len(set(refusals.values())) == 1, refusals  # exactly where and as the phases refuse
    facts = db_state.read(db.engine).as_facts()
    assert facts["known"] is False and facts["next_step"] == "unknown" and facts["up_to_date"] is False
    if "upgrades leaves" in words or "which the database" in words:
        assert facts["inconsistent"] is True
    assert schema_dump.dump(db.engine) == before  # nothing written


def test_every_state_glance_leaves_is_consistent(make_database):
    """The check refuses nothing Glance's upgrades leave: each revision's state on MySQL,
    walked offline to mitaka02, then expand, migrate and contract one revision at a time
    (the half-finished E-M-C states included)."""
    db = make_database("mysql")

    def consistent():
        state = db_state.read(db.engine)
        assert state.refusal() is None, (state.rows, str(state.refusal()))
        assert state.as_facts()["inconsistent"] is False

    for revision in ("liberty", "mitaka01", "mitaka02"):
        phases.run(db.engine, "sync", version=revision)
        consistent()
    for revision in [r.id for r in GRAPH.order if r.branch == EXPAND]:
        phases.run(db.engine, "expand", version=revision)
        consistent()
    phases.run(db.engine, "migrate")
    for revision in [r.id for r in GRAPH.order if r.branch == CONTRACT]:
        phases.run(db.engine, "contract", version=revision)
        consistent()
