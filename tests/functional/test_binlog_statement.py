"""A MariaDB with statement-based binary logging (``binlog_format = STATEMENT``).

InnoDB refuses a write in READ COMMITTED there (error 1665): its effect could not be
logged as a statement. Our batches run in READ COMMITTED where the server allows it
(isolation.py), and in the server's REPEATABLE READ here. On such a server the whole
cycle, with shadow copies, and a purge complete, and the schema is real Glance's.
"""

from __future__ import annotations

import datetime
import functools
import types

import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (
    connection as db_connection, online, phases, purge,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.online import copier
from parity import HEAD, differences
from private_server import start_private_mariadb
from run_phase import set_copy_threshold
from seed import seed_pre_ocata, visibilities
import test_purge

IMAGES = 60


def test_the_cycle_and_a_purge_complete_under_statement_binary_logging(monkeypatch):
    # Shadow copies from 20 rows (10,000 in the product), undone after this test.
    monkeypatch.setattr(online, "MIN_ROWS", online.MIN_ROWS)
    monkeypatch.setattr(copier.TableCopy, "__init__", copier.TableCopy.__init__)
    set_copy_threshold(20)
    with start_private_mariadb(log_bin=True) as server:
        server.execute("SET GLOBAL binlog_format = 'STATEMENT'")
        server.execute("CREATE DATABASE glance CHARACTER SET utf8mb4")  # as kolla and OSA make it
        engine = db_connection.create_engine(db_connection.resolve_url(server.url("glance")))
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT @@log_bin, @@binlog_format").one() == (1, "STATEMENT")
            db = types.SimpleNamespace(engine=engine, rows=functools.partial(_rows, engine))
            phases.run(engine, "sync", version="mitaka02")
            expected = seed_pre_ocata(db, IMAGES)
            copies = []
            for phase in ("expand", "migrate", "contract"):
                outcome = phases.run(engine, phase)
                copies += [c["table"] for c in outcome.table_copies]
            assert "images" in copies, copies  # the copies' batches ran here too
            assert visibilities(db) == expected
            diff = differences(engine, "mysql", HEAD)
            assert diff == "", diff

            now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
            test_purge.seed(db, now, images=30, tasks=12, id_base=1000)
            result = purge.run(purge.Purge(engine, max_rows=-1, batch_size=4))
            assert result["total"] > 0, result
        finally:
            engine.dispose()


def _rows(engine, sql):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]
