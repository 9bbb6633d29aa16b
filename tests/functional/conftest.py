"""Real databases for the tests: a fresh, uniquely named one per test.

MariaDB at 127.0.0.1:3306 (root) and PostgreSQL at 127.0.0.1:5432 (postgres)
are the servers of this machine and of CI. In CI an unreachable server fails
the run loudly; locally the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (
    connection as db_connection,
)

SERVERS = {
    "mysql": os.environ.get("GLANCE_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306"),
    "postgresql": os.environ.get("GLANCE_TEST_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
}
ENGINES = ("sqlite", "mysql", "postgresql")
_reachable = {}


def server_admin_url(engine_name):
    base = SERVERS[engine_name]
    return base + ("/mysql" if engine_name == "mysql" else "/postgres")


def _check_server(engine_name):
    if engine_name not in _reachable:
        try:
            admin = sa.create_engine(server_admin_url(engine_name), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            admin.dispose()
            _reachable[engine_name] = None
        except Exception as exc:  # report why, below
            _reachable[engine_name] = "%s at %s is unreachable: %s" % (
                engine_name, SERVERS[engine_name], str(exc).splitlines()[0])
    reason = _reachable[engine_name]
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI requires every database server)", pytrace=False)
        pytest.skip(reason)


def clone_mysql_database(source, target):
    """Copy MySQL database ``source`` into a new database ``target`` on the server: tables as SHOW
    CREATE TABLE gives them (foreign keys included), their rows, then the triggers in their
    order (FOLLOWS/PRECEDES dropped: created in order, they keep it)."""
    engine = sa.create_engine(server_admin_url("mysql"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE `%s`" % target)
            conn.exec_driver_sql("USE `%s`" % target)
            conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
            # The source's rows already satisfy its unique keys: not checking them again takes
            # about a third off each INSERT ... SELECT (12,000 images: 0.37 s, not 0.55 s).
            conn.exec_driver_sql("SET SESSION unique_checks = 0")
            tables = conn.exec_driver_sql(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", (source,)).scalars().all()
            for table in tables:
                conn.exec_driver_sql(conn.exec_driver_sql(
                    "SHOW CREATE TABLE `%s`.`%s`" % (source, table)).one()[1].replace("%", "%%"))
                conn.exec_driver_sql("INSERT INTO `%s` SELECT * FROM `%s`.`%s`" % (table, source, table))
            triggers = conn.exec_driver_sql(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s ORDER BY "
                "EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER", (source,)).scalars().all()
            for trigger in triggers:
                row = conn.exec_driver_sql("SHOW CREATE TRIGGER `%s`.`%s`" % (source, trigger)).one()
                conn.exec_driver_sql("SET SESSION sql_mode = %s", (row[1],))
                statement = re.sub(r"\bFOR\s+EACH\s+ROW\s+(FOLLOWS|PRECEDES)\s+`?\w+`?", "FOR EACH ROW",
                                   row[2], count=1, flags=re.IGNORECASE)
                conn.exec_driver_sql(statement.replace("%", "%%"))
    finally:
        engine.dispose()


class TestDatabase(object):
    """One throwaway database: its URL, an engine for assertions, and cleanup."""

    __test__ = False

    def __init__(self, engine_name, tmp_path, copy_of=None):
        self.engine_name = engine_name
        self.name = "glance_t_%s" % uuid.uuid4().hex[:12]
        if copy_of:  # its connections closed: PostgreSQL copies a template nobody is connected to
            copy_of.engine.dispose()
        if engine_name == "sqlite":
            self.path = tmp_path / (self.name + ".sqlite")
            if copy_of:
                shutil.copyfile(str(copy_of.path), str(self.path))
            self.url = "sqlite:///%s" % self.path
        else:
            _check_server(engine_name)
            if engine_name == "mysql" and copy_of:
                clone_mysql_database(copy_of.name, self.name)
            else:
                self._admin("CREATE DATABASE %s" % self.name + (" TEMPLATE %s" % copy_of.name if copy_of else ""))
            self.url = "%s/%s" % (SERVERS[engine_name], self.name)
        self.engine = db_connection.create_engine(db_connection.resolve_url(self.url))

    def _admin(self, statement):
        admin = sa.create_engine(server_admin_url(self.engine_name), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(statement)
        finally:
            admin.dispose()

    def scalar(self, sql, **params):
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def execute(self, sql, **params):
        with self.engine.begin() as conn:
            return conn.execute(sa.text(sql), params)

    def rows(self, sql, **params):
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params)]

    def drop(self):
        self.engine.dispose()
        if self.engine_name == "mysql":
            self._admin("DROP DATABASE IF EXISTS %s" % self.name)
        elif self.engine_name == "postgresql":
            self._admin("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)


@pytest.fixture
def make_database(tmp_path):
    """Factory: make_database('mysql') -> TestDatabase, dropped after the test;
    make_database('mysql', copy_of=db): a new database holding what ``db`` holds
    (a fraction of the time of running its revisions and seeding it again)."""
    made = []

    def make(engine_name, copy_of=None):
        db = TestDatabase(engine_name, tmp_path, copy_of)
        made.append(db)
        return db

    yield make
    for db in made:
        db.drop()


@pytest.fixture(params=ENGINES)
def database(request, make_database):
    """A fresh database on each engine in turn."""
    return make_database(request.param)


@pytest.fixture(params=("sqlite", "mysql"))
def online_database(request, make_database):
    """A fresh database on each engine that supports rolling upgrades."""
    return make_database(request.param)


class Blackhole(object):
    """A port on 127.0.0.2 that never answers: its accept queue is full, so the
    kernel drops every new SYN and a client waits until its own timeout."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.2", 0))
        self.server.listen(0)
        self.port = self.server.getsockname()[1]
        self.fillers = []
        while len(self.fillers) < 3:
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.2", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)

    def close(self):
        for sock in self.fillers + [self.server]:
            sock.close()


@pytest.fixture
def blackhole():
    """A Blackhole, closed after the test."""
    hole = Blackhole()
    yield hole
    hole.close()


# The files that take longest, longest first (--durations of a whole run). xdist's --dist
# loadfile hands out files in collection order, one at a time as a worker runs dry: the long
# ones first keep the two workers busy to the end, where a three-minute file handed out last
# would run alone.
SLOWEST_FILES = (
    "test_secrets.py", "test_kill_points.py", "test_kill_points_later.py",
    "test_table_copy.py", "test_examples.py", "test_crash.py", "test_grants.py",
    "test_progress.py", "test_kill_points_sigterm.py", "test_concurrency.py", "test_metadefs.py",
    "test_kolla_ansible.py", "test_deployment_urls.py", "test_messages.py", "test_progress_writers.py",
    "test_release_rollout.py", "test_purge.py",
)


def pytest_configure(config):
    # xdist would order the files by their number of tests instead (a one-test file last).
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    here = Path(__file__).resolve().parent
    rank = dict((here / name, i) for i, name in enumerate(SLOWEST_FILES))
    items.sort(key=lambda item: rank.get(item.path, len(SLOWEST_FILES)))
