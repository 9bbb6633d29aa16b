"""Release N-1 image creates against a shadow copy's swap, over and over (issue 21, the 1146 residual).

A private MariaDB (scripts/private-mariadb), a database expanded to Glance's head
with Glance's Ocata triggers on images and a few thousand images; then ``swaps``
shadow copies of images (online.copier.TableCopy.rebuild, alternately adding and
dropping an index: copy triggers, rows copied, children repointed under LOCK TABLES,
stand-ins, RENAME, old copy dropped, Glance's triggers restored) while ``writers``
threads create images the release N-1 way (benchmarks/canary.py's statements: INSERT
INTO images with is_public, then INSERT INTO image_properties, one transaction).
Every error of a writer is recorded with its statement, its connection id and the
time; the general log of the server is kept around the first non-deadlock error.

    python tests/functional/swap_stress.py [--swaps N] [--writers N] [--burn N] [--no-general-log]

prints one JSON line per swap with errors, then a summary; exit 1 when a write failed
with anything but a deadlock. ``run`` is what tests/functional/test_swap_race.py calls.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / ".build" / "collections"))

import sqlalchemy as sa  # noqa: E402

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (  # noqa: E402
    connection as db_connection, phases)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.db_errors import (  # noqa: E402
    DDL, DEADLOCK, with_backoff)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.online import copier  # noqa: E402
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.revisions import (  # noqa: E402
    CARRIED_TRIGGERS)
from private_server import start_private_mariadb  # noqa: E402
from seed import seed_pre_ocata  # noqa: E402

IMAGES = 3000
CLAUSES = ("ADD INDEX IF NOT EXISTS stress_size_idx (size)", "DROP INDEX IF EXISTS stress_size_idx")
CREATE = (
    ("INSERT INTO images (id, name, size, status, is_public, created_at, updated_at, deleted, "
     "disk_format, container_format, owner, min_disk, min_ram, protected) VALUES "
     "(%(id)s, %(name)s, 1024, 'active', %(value)s, UTC_TIMESTAMP(), UTC_TIMESTAMP(), 0, 'raw', 'bare', "
     "'stress', 0, 0, 0)"),
    ("INSERT INTO image_properties (image_id, name, value, created_at, deleted) "
     "VALUES (%(id)s, 'stress_writer', %(name)s, UTC_TIMESTAMP(), 0)"),
)


class Writers(object):
    """``count`` threads, each on its own connection, creating images the N-1 way as fast as
    they can; a deadlock is retried (as pre-Ocata Glance did), any other error recorded."""

    def __init__(self, url, count):
        self.url = url
        self.count = count
        self.stop = threading.Event()
        self.errors = []  # {"at", "connection", "statement", "code", "message", "image"}
        self.created = []
        self.deadlocks = 0
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(count)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def join(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _loop(self, n):
        import pymysql
        url = sa.engine.make_url(self.url)
        conn = pymysql.connect(host=url.host, port=url.port, user=url.username, database=url.database,
                               autocommit=False)
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = 'TRADITIONAL'")
            cursor.execute("SELECT CONNECTION_ID()")
            me = cursor.fetchone()[0]
        k = 0
        while not self.stop.is_set():
            k += 1
            params = {"id": str(uuid.uuid4()), "name": "stress-%d-%d" % (n, k), "value": k % 3 == 0}
            for _attempt in range(50):
                statement = None
                try:
                    with conn.cursor() as cursor:
                        for statement in CREATE:
                            cursor.execute(statement, params)
                    conn.commit()
                    with self._lock:
                        self.created.append(params["id"])
                    break
                except pymysql.MySQLError as exc:
                    at = time.time()
                    conn.rollback()
                    code = exc.args[0] if exc.args else None
                    if code == DEADLOCK:
                        with self._lock:
                            self.deadlocks += 1
                        continue
                    with self._lock:
                        self.errors.append({"at": at, "connection": me, "statement": statement.split("(")[0].strip(),
                                            "code": code, "message": str(exc.args[1:] or exc), "image": params["id"]})
                    break
        conn.close()


def _burn(stop_at):
    while time.time() < stop_at:
        pass


class Swapper(object):
    """TableCopy.rebuild of images, alternating CLAUSES; records each RENAME's start and end."""

    def __init__(self, engine):
        self.engine = engine
        self.renames = []  # [start, end]
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("RENAME TABLE `images`"):
            self.renames.append([time.time(), None])

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("RENAME TABLE `images`"):
            self.renames[-1][1] = time.time()

    def swap(self, conn, n):
        def run_ddl(c, sql):
            return with_backoff(lambda: c.exec_driver_sql(sql), DDL, time.sleep)
        copy = copier.TableCopy(run_ddl, min_rows=1, carried=CARRIED_TRIGGERS)
        copy.rebuild(conn, "images", CLAUSES[n % 2])
        return copy.copies


def general_log_around(path, connection, at_least=40):
    """The general log's lines of the failed writer's connection and of every statement naming
    a shadow copy (ours) or RENAME, from the last RENAME before its failure to a little after."""
    lines = Path(path).read_text(errors="replace").splitlines()
    failed = [i for i, line in enumerate(lines) if ("\t%d Query" % connection) in line or
              (" %d Query" % connection) in line]
    if not failed:
        return lines[-at_least:]
    last = failed[-1]
    start = max(0, last - 400)
    for i in range(last, max(0, last - 3000), -1):
        if "RENAME TABLE `images`" in lines[i]:
            start = i - 20
            break
    return lines[max(0, start):last + 20]


def run(server, swaps=60, writers=8, burn=0, images=IMAGES, general_log=True, stop_on_error=True, out=print):
    """Make the database on ``server`` (a private_server.PrivateMariaDB), then swap images ``swaps``
    times under ``writers`` N-1 writers. Returns {"swaps", "errors", "created", "deadlocks", "log"}."""
    name = "swap_stress_%s" % uuid.uuid4().hex[:8]
    server.execute("CREATE DATABASE %s" % name)
    url = server.url(name)
    engine = db_connection.create_engine(db_connection.resolve_url(url))
    phases.run(engine, "sync", version="mitaka02")

    class _Db(object):  # what seed_pre_ocata needs
        pass
    db = _Db()
    db.engine = engine
    seed_pre_ocata(db, images)
    phases.run(engine, "expand")  # Glance's Ocata triggers on images from here to contract
    log_file = str(server.dir / "general.log")
    if general_log:
        server.execute("SET GLOBAL general_log_file = '%s'" % log_file)
        server.execute("SET GLOBAL general_log = 1")
    burners = []
    if burn:
        stop_at = time.time() + 3600
        burners = [multiprocessing.Process(target=_burn, args=(stop_at,), daemon=True) for _n in range(burn)]
        for proc in burners:
            proc.start()
    swapper = Swapper(engine)
    load = Writers(url, writers)
    load.start()
    done = 0
    try:
        time.sleep(0.5)
        with engine.connect() as conn:
            conn.exec_driver_sql("SET SESSION lock_wait_timeout = 10")
            for n in range(swaps):
                seen = len(load.errors)
                swapper.swap(conn, n)
                done += 1
                if len(load.errors) > seen:
                    out(json.dumps({"swap": n, "errors": load.errors[seen:]}))
                    if stop_on_error:
                        time.sleep(0.3)
                        break
    finally:
        load.join()
        for proc in burners:
            proc.terminate()
        if general_log:
            server.execute("SET GLOBAL general_log = 0")
        engine.dispose()
    result = {"swaps": done, "errors": load.errors, "created": len(load.created), "deadlocks": load.deadlocks,
              "renames": swapper.renames, "database": name, "log": []}
    for error in load.errors:
        after = [round(1000 * (error["at"] - s), 1) for s, _e in swapper.renames if s <= error["at"]]
        error["ms_after_rename_start"] = after[-1] if after else None
    if load.errors and general_log:
        result["log"] = general_log_around(log_file, load.errors[0]["connection"])
    # the rows: every create that committed is there, with its visibility derived
    with engine.connect() as conn:
        rows = dict(conn.exec_driver_sql("SELECT id, visibility FROM images WHERE owner = 'stress'").fetchall())
    result["lost"] = [i for i in load.created if i not in rows]
    result["no_visibility"] = [i for i in load.created if i in rows and rows[i] is None]
    server.execute("DROP DATABASE %s" % name)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--swaps", type=int, default=60)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--burn", type=int, default=0, help="busy processes beside (machine load)")
    parser.add_argument("--images", type=int, default=IMAGES)
    parser.add_argument("--no-general-log", action="store_true")
    parser.add_argument("--keep-going", action="store_true", help="do not stop at the first error")
    args = parser.parse_args(argv)
    with start_private_mariadb() as server:
        result = run(server, args.swaps, args.writers, args.burn, args.images, not args.no_general_log,
                     not args.keep_going)
    log = result.pop("log")
    result.pop("renames")
    print(json.dumps({k: v for k, v in result.items() if k not in ("lost", "no_visibility")}
                     | {"lost": len(result["lost"]), "no_visibility": len(result["no_visibility"])}, indent=1))
    if log:
        print("--- general log around the first error:")
        print("\n".join(log))
    return 1 if result["errors"] or result["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
