"""Pin the one private Alembic hook the engine relies on.

online.alembic_hook.OnlineDDL.install wraps ``context.impl._exec`` (Alembic's
DefaultImpl._exec, private): every statement an operation emits must pass
through it, or LOCK=NONE, the lock-wait retries, the shadow-table copy of a
large table and the "already done" resume of a killed run are silently lost. If an Alembic upgrade renames the method or
routes an operation around it, these tests fail at once, before any revision
runs without them.
"""

from __future__ import annotations

import inspect

import pytest
import sqlalchemy as sa
from alembic.ddl.impl import DefaultImpl
from alembic.migration import MigrationContext
from alembic.operations import Operations


def test_the_hook_exists_with_the_arguments_the_wrapper_passes_on():
    assert callable(getattr(DefaultImpl, "_exec", None)), "alembic.ddl.impl.DefaultImpl._exec is gone"
    names = list(inspect.signature(DefaultImpl._exec).parameters)
    assert names[:2] == ["self", "construct"], names


@pytest.fixture
def recorded():
    """A live SQLite MigrationContext whose _exec is wrapped as OnlineDDL.install wraps it."""
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        context = MigrationContext.configure(conn)
        impl = context.impl
        original = impl._exec
        seen = []

        def execute(construct, *args, **kwargs):
            seen.append(str(construct.compile(dialect=context.dialect)) if not isinstance(construct, str)
                        else construct)
            return original(construct, *args, **kwargs)

        impl._exec = execute
        with Operations.context(context):
            yield Operations(context), seen
    engine.dispose()


def test_every_operation_the_revisions_use_passes_through_the_hook(recorded):
    op, seen = recorded
    # The kinds of operation Glance's revisions run on MySQL (see revisions/).
    op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.String(10)))
    op.add_column("t", sa.Column("b", sa.String(10), nullable=True))
    op.create_index("ix_t_b", "t", ["b"])
    op.drop_index("ix_t_b", table_name="t")
    op.execute("UPDATE t SET b = a")
    op.execute(sa.text("CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN SELECT 1; END"))
    op.drop_column("t", "b")
    op.drop_table("t")
    kinds = ["CREATE TABLE", "ALTER TABLE t ADD COLUMN", "CREATE INDEX", "DROP INDEX", "UPDATE t",
             "CREATE TRIGGER", "ALTER TABLE t DROP COLUMN", "DROP TABLE"]
    assert len(seen) == len(kinds), seen
    for statement, kind in zip(seen, kinds):
        assert statement.strip().upper().startswith(kind.upper()), (kind, statement)
