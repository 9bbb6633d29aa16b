"""What the benchmark scripts share: the engine import, throwaway databases, figures.

The engine is imported as Ansible names it (ansible_collections.openstack_ops.glance),
through the same .build/collections symlink the tests use.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from pathlib import Path

# The repository, the collection link and progress output are _lib's (one home each).
from _lib import COLLECTIONS as COLLECTIONS_ROOT, link_collection, log as say  # noqa: E402,F401

MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"
POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"


link_collection()
sys.path.insert(0, str(COLLECTIONS_ROOT))

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (  # noqa: E402
    connection, phases,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.deps import sa  # noqa: E402,F401


# What the benchmark scripts import from here, the engine's modules included.
__all__ = ["connection", "phases", "sa", "engine_for", "plain_engine", "throwaway_database",
           "percentiles", "emit", "say"]


def engine_for(url, **kwargs):
    """An engine made the way the modules make theirs (plus any extra options)."""
    engine = connection.create_engine(connection.resolve_url(url))
    if kwargs:
        engine = engine.execution_options(**kwargs)
    return engine


def plain_engine(url, **kwargs):
    return sa.create_engine(url, **kwargs)


@contextlib.contextmanager
def throwaway_database(kind="mysql", prefix="bench"):
    """Create an empty database named bench_..., yield its URL, drop it whatever happens."""
    name = "%s_%d_%s" % (prefix, os.getpid(), uuid.uuid4().hex[:8])
    if kind == "sqlite":
        path = Path("/tmp") / ("%s.sqlite" % name)
        try:
            yield "sqlite:///%s" % path
        finally:
            for left in path.parent.glob(path.name + "*"):  # with the engine's lock file
                left.unlink(missing_ok=True)
        return
    server = MARIADB_SERVER if kind == "mysql" else POSTGRES_SERVER
    admin = sa.create_engine(server + ("" if kind == "mysql" else "postgres"),
                             isolation_level="AUTOCOMMIT")
    create = "CREATE DATABASE %s" % name
    if kind == "mysql":
        create += " CHARACTER SET utf8"
    with admin.connect() as conn:
        conn.exec_driver_sql(create)
    try:
        yield server + name + ("?charset=utf8" if kind == "mysql" else "")
    finally:
        with admin.connect() as conn:
            if kind == "postgresql":  # a crashed writer may still hold a session
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = '%s' AND pid <> pg_backend_pid()" % name)
            conn.exec_driver_sql("DROP DATABASE IF EXISTS %s" % name)
        admin.dispose()


def percentiles(values):
    """p50, p99 and max of a list of latencies in seconds, as milliseconds."""
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q):
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"n": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99),
            "max_ms": round(1000 * ordered[-1], 2)}


def emit(result, out_dir=None, filename=None):
    """Write the result to OUT_DIR/filename and print it as the last line of stdout."""
    line = json.dumps(result, sort_keys=True)
    if out_dir and filename:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / filename).write_text(line + "\n")
    print(line, flush=True)
