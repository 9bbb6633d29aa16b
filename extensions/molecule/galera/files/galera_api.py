"""A stand-in for one Glance API node on a Galera cluster (molecule `galera`).

Like the `rolling` scenario's stand-in, it keeps writing images the way its
release does while it runs (N-1: ``images.is_public``; N: ``images.visibility``;
the ``mode`` file of its state directory, re-read before every write, holds the
release), and logs every write with its outcome. Here each node writes through
its own Galera node, and does what Glance's API does to images:

- create: a new image (and a member for the shared kinds);
- update: make one of its own private images public;
- touch: ``size = size + 1`` on one of a few seeded images every node touches,
  so that writes through different Galera nodes conflict (certification);
- destroy: soft-delete one of its own images with its members and properties,
  as Glance's image_destroy does.

Glance wraps image_create, image_update and image_destroy in oslo.db's
``wrap_db_retry(max_retries=50, retry_interval=0.5, inc_retry_interval=False,
retry_on_deadlock=True)``: a deadlock (MySQL error 1213, which is also how
Galera reports a transaction aborted by a conflicting one or by DDL in total
order isolation) reruns the whole transaction after a fixed half second, up to
50 more times. This stand-in does the same, and logs how many 1213 errors each
write met and whether it failed after its retries.

    galera_api.py start   --state-dir D --node NAME --port P --db DB.json --hot HOT.json
    galera_api.py upgrade --state-dir D --release N
    galera_api.py stop    --state-dir D

``start`` runs the loop in the background and returns once its health check
answers; the loop ends on ``stop``, or by itself after --max-seconds, so
nothing outlives a test.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

OLD, NEW = "N-1", "N"
OLD_KINDS = ("public", "private", "private+member")
NEW_KINDS = ("public", "private", "shared", "community")

# What Glance's image_create/update/destroy pass to oslo.db's wrap_db_retry
# (glance/db/sqlalchemy/api.py); oslo.db's own defaults are 20, 1 s, doubling.
MAX_RETRIES = 50
RETRY_INTERVAL = 0.5
INC_RETRY_INTERVAL = False
MAX_RETRY_INTERVAL = 10
DEADLOCK = 1213

INSERT_OLD = ("INSERT INTO images (id, name, size, status, is_public, created_at, deleted, "
              "min_disk, min_ram, protected) VALUES (%s, %s, 1024, 'active', %s, NOW(), 0, 0, 0, 0)")
INSERT_NEW = ("INSERT INTO images (id, name, size, status, visibility, created_at, deleted, "
              "min_disk, min_ram, protected) VALUES (%s, %s, 1024, 'active', %s, NOW(), 0, 0, 0, 0)")
INSERT_MEMBER = ("INSERT INTO image_members (image_id, member, can_share, created_at, deleted, status) "
                 "VALUES (%s, 'tenant-x', 0, NOW(), 0, 'accepted')")
INSERT_PROPERTY = ("INSERT INTO image_properties (image_id, name, value, created_at, deleted) "
                   "VALUES (%s, 'writer', %s, NOW(), 0)")
DESTROY = ("UPDATE images SET deleted = 1, deleted_at = NOW(), status = 'deleted', updated_at = NOW() "
           "WHERE id = %s")
DESTROY_CHILDREN = ("UPDATE {table} SET deleted = 1, deleted_at = NOW() "
                    "WHERE image_id = %s AND deleted = 0")


class Deadlocked(Exception):
    """A write that still met error 1213 after every retry."""


def paths(state_dir):
    return {name: os.path.join(state_dir, name)
            for name in ("mode", "pid", "stop", "writes.jsonl", "server.log")}


def read_mode(files):
    try:
        with open(files["mode"]) as handle:
            return handle.read().strip() or OLD
    except FileNotFoundError:
        return OLD


def pid_alive(pid):
    """True if ``pid`` is a running galera_api.py (not a reused pid)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return b"galera_api.py" in handle.read()
    except OSError:
        return False


def read_pid(files):
    try:
        with open(files["pid"]) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def error_code(exc):
    args = getattr(exc, "args", None)
    return args[0] if args and isinstance(args[0], int) else None


class Writer(object):
    """Writes images the way one release does; one transaction per write, retried on 1213."""

    def __init__(self, node, db, hot, files):
        self.node = node
        self.db = db
        self.hot = hot
        self.files = files
        self.conn = None
        self.server = None
        self.count = 0
        self.private_ids = []
        self.own_ids = []
        self.log = open(files["writes.jsonl"], "a", buffering=1)

    def connect(self):
        import pymysql  # the project's virtualenv has it
        if self.conn is None:
            self.conn = pymysql.connect(
                host=self.db["host"], port=int(self.db["port"]), user=self.db["user"],
                password=self.db["password"], database=self.db["database"],
                autocommit=False, connect_timeout=5, read_timeout=30, write_timeout=30,
                cursorclass=pymysql.cursors.DictCursor)
            with self.conn.cursor() as cur:
                # Which Galera node this API node writes through (verify checks they differ).
                cur.execute("SELECT @@port AS port, @@wsrep_node_name AS name")
                self.server = cur.fetchone()
            self.conn.commit()
        return self.conn

    def choose(self):
        """The next operation and its image, in a fixed rotation."""
        self.count += 1
        if self.count % 3 == 0 and self.hot:
            return "touch", self.hot[self.count % len(self.hot)]
        if self.count % 5 == 0 and self.private_ids:
            return "update", self.private_ids.pop(0)
        if self.count % 7 == 0 and self.own_ids:
            return "destroy", self.own_ids.pop(0)
        return "create", str(uuid.uuid4())

    def transaction(self, release, op, image_id, kind):
        """One write and its read-back, as Glance's image_create/update/destroy do."""
        conn = self.connect()
        with conn.cursor() as cur:
            if op == "create":
                name = "%s-%s-%d" % (self.node, release, self.count)
                if release == OLD:
                    cur.execute(INSERT_OLD, (image_id, name, 1 if kind == "public" else 0))
                else:
                    cur.execute(INSERT_NEW, (image_id, name, kind))
                if kind in ("private+member", "shared"):
                    cur.execute(INSERT_MEMBER, (image_id,))
                cur.execute(INSERT_PROPERTY, (image_id, self.node))
            elif op == "update":
                if release == OLD:
                    cur.execute("UPDATE images SET is_public = 1, updated_at = NOW() WHERE id = %s",
                                (image_id,))
                else:
                    cur.execute("UPDATE images SET visibility = 'public', updated_at = NOW() "
                                "WHERE id = %s", (image_id,))
            elif op == "touch":
                cur.execute("UPDATE images SET size = size + 1, updated_at = NOW() WHERE id = %s",
                            (image_id,))
            else:
                cur.execute(DESTROY, (image_id,))
                for table in ("image_members", "image_properties", "image_locations"):
                    cur.execute(DESTROY_CHILDREN.format(table=table), (image_id,))
            conn.commit()
            cur.execute("SELECT * FROM images WHERE id = %s", (image_id,))
            row = cur.fetchone()
            conn.commit()
        return row

    def with_retry(self, entry, *args):
        """oslo.db's wrap_db_retry with Glance's arguments, counting the 1213 errors met."""
        sleep_time = RETRY_INTERVAL
        remaining = MAX_RETRIES
        while True:
            try:
                return self.transaction(*args)
            except Exception as exc:
                if error_code(exc) != DEADLOCK:
                    raise
                entry["deadlocks"] += 1
                entry["last_deadlock"] = str(exc)[:200]
                try:
                    self.conn.rollback()
                except Exception:
                    self.drop_connection()
                if remaining == 0:
                    raise Deadlocked(str(exc))
                time.sleep(sleep_time)
                if INC_RETRY_INTERVAL:
                    sleep_time = min(sleep_time * 2, MAX_RETRY_INTERVAL)
                remaining -= 1

    def write_once(self, release):
        op, image_id = self.choose()
        kinds = OLD_KINDS if release == OLD else NEW_KINDS
        kind = {"create": kinds[self.count % len(kinds)], "update": "public"}.get(op)
        entry = {"t": time.time(), "node": self.node, "release": release, "op": op,
                 "id": image_id, "kind": kind, "deadlocks": 0}
        try:
            row = self.with_retry(entry, release, op, image_id, kind)
            entry["t_done"] = time.time()
            entry["server"] = self.server
            entry["has_is_public"] = "is_public" in row
            entry["expected"] = self.expected(release, kind, row) if kind else None
            entry["ok"] = True
            if op == "create":
                # Images without members are destroyed later; private ones are updated first.
                if kind == "private":
                    self.private_ids.append(image_id)
                elif kind in ("public", "community"):
                    self.own_ids.append(image_id)
        except Exception as exc:  # a failed write is what the test counts
            entry.update(ok=False, error="%s: %s" % (type(exc).__name__, exc),
                         failed_after_retries=isinstance(exc, Deadlocked), t_done=time.time())
            self.drop_connection()
        self.log.write(json.dumps(entry, sort_keys=True) + "\n")

    @staticmethod
    def expected(release, kind, row):
        """The visibility Glance's rules give this image once the upgrade is over."""
        if kind in ("public", "community"):
            return kind
        if kind in ("private+member", "shared"):
            return "shared"
        if release == NEW:
            return "private"
        # Release N-1, private: the insert trigger says 'shared'; written before
        # it (no visibility yet), the Ocata data migration says 'private'.
        return row.get("visibility") or "private"

    def drop_connection(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None


def serve_health(port, ready):
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path.rstrip("/") == "/healthcheck" and ready.is_set()
            body = b"OK" if ok else b"not ready"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(args):
    files = paths(args.state_dir)
    with open(args.db) as handle:
        db = json.load(handle)
    with open(args.hot) as handle:
        hot = json.load(handle)["hot"]
    with open(files["pid"], "w") as handle:
        handle.write(str(os.getpid()))
    ready = threading.Event()
    server = serve_health(args.port, ready)
    writer = Writer(args.node, db, hot, files)
    deadline = time.monotonic() + args.max_seconds
    stopping = []
    signal.signal(signal.SIGTERM, lambda *a: stopping.append(True))
    try:
        while not stopping and not os.path.exists(files["stop"]) and time.monotonic() < deadline:
            writer.write_once(read_mode(files))
            if writer.conn is not None:
                ready.set()
            time.sleep(args.interval)
    finally:
        server.shutdown()
        writer.drop_connection()
        writer.log.close()
        if read_pid(files) == os.getpid():
            os.unlink(files["pid"])
    return 0


def start(args):
    files = paths(args.state_dir)
    os.makedirs(args.state_dir, exist_ok=True)
    pid = read_pid(files)
    if pid and pid_alive(pid):
        print("already running (pid %d)" % pid)
        return 0
    if os.path.exists(files["stop"]):
        os.unlink(files["stop"])
    command = [sys.executable, os.path.abspath(__file__), "run", "--state-dir", args.state_dir,
               "--node", args.node, "--port", str(args.port), "--db", args.db, "--hot", args.hot,
               "--max-seconds", str(args.max_seconds), "--interval", str(args.interval)]
    with open(files["server.log"], "a") as log:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True, close_fds=True)
    url = "http://127.0.0.1:%d/healthcheck" % args.port
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if child.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    print("started %s (pid %d, %s)" % (args.node, child.pid, read_mode(files)))
                    return 0
        except OSError:
            pass
        time.sleep(0.1)
    with open(files["server.log"]) as log:
        sys.stderr.write("did not become healthy:\n" + log.read()[-2000:])
    return 1


def stop(args):
    files = paths(args.state_dir)
    pid = read_pid(files)
    if not pid or not pid_alive(pid):
        print("not running")
        return 0
    open(files["stop"], "w").close()
    # A write may be sleeping between retries: give it their whole length.
    deadline = time.monotonic() + 10 + MAX_RETRIES * RETRY_INTERVAL
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            print("stopped (pid %d)" % pid)
            return 0
        time.sleep(0.1)
    os.kill(pid, signal.SIGTERM)  # only the pid this state directory started
    time.sleep(0.5)
    print("terminated (pid %d)" % pid)
    return 0


def upgrade(args):
    files = paths(args.state_dir)
    with open(files["mode"], "w") as handle:
        handle.write(args.release + "\n")
    print("release %s" % args.release)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "run"):
        p = sub.add_parser(name)
        p.add_argument("--state-dir", required=True)
        p.add_argument("--node", required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--db", required=True, help="JSON file: host, port, user, password, database")
        p.add_argument("--hot", required=True, help="JSON file whose 'hot' lists the images every node touches")
        p.add_argument("--max-seconds", type=float, default=600)
        p.add_argument("--interval", type=float, default=0.1)
    p = sub.add_parser("upgrade")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--release", choices=(OLD, NEW), required=True)
    p = sub.add_parser("stop")
    p.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    return {"start": start, "run": run, "upgrade": upgrade, "stop": stop}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
