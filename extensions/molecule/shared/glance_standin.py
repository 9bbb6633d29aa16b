"""A stand-in Glance API node for the molecule scenarios, and what its variants share.

A stand-in writes images to the Glance database the way its release does, as
the API does during a rolling upgrade from before Ocata
(/work/shared/GLANCE_SCHEMA_FACTS.md, ``images``):

- release N-1 (before its node is upgraded) writes ``images.is_public``:
  public, private, private with a member; and makes private images public
  with ``UPDATE is_public``;
- release N (after) writes ``images.visibility``: public, private, shared
  with a member, community; and ``UPDATE visibility``.

Its release is the file ``mode`` of its state directory, re-read before every
write; the node's upgrade hook switches it. ``upgrade --glance RELEASE`` also
records which OpenStack release the node then runs, and ``version`` prints the
Glance version of it (what the role's release check asks of a node).

Glance wraps image_create, image_update and image_destroy in oslo.db's
``wrap_db_retry(max_retries=50, retry_interval=0.5, inc_retry_interval=False,
retry_on_deadlock=True)``: a deadlock (MySQL error 1213, which is also how
Galera reports a transaction aborted by a conflicting one or by DDL in total
order isolation) reruns the whole transaction after a fixed half second.
``--max-retries`` is 50 here too; 0 counts every 1213 as a failed write.

Run as a program it is the stand-in of the `rolling` and `galera` scenarios:
a loop that writes about every --interval seconds and logs each write, with
its outcome, to ``writes.jsonl``. It creates images (with a member for the
shared kinds, and a property), makes private ones public, and with --destroy
soft-deletes its own public ones as Glance's image_destroy does; with --hot
(a JSON file whose ``hot`` lists seeded images) it also touches those
(``size = size + 1``), so that writes through different Galera nodes conflict.
haproxy/files/api_node.py imports it to serve the same writes over HTTP.

    glance_standin.py start   --state-dir D --node NAME --port P --db DB.json [--hot HOT.json] [--destroy]
    glance_standin.py upgrade --state-dir D --release N-1|N [--glance RELEASE]
    glance_standin.py version --state-dir D
    glance_standin.py stop    --state-dir D

``start`` runs the loop in the background (its own session) and returns once
``http://127.0.0.1:P/healthcheck`` answers 200; the loop ends on ``stop`` (a
stop file), or by itself after --max-seconds, so nothing outlives a test.
"""

from __future__ import annotations

import argparse
import http.server
import importlib.util
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
MEMBER_KINDS = ("private+member", "shared")

# What Glance's image_create/update/destroy pass to oslo.db's wrap_db_retry
# (glance/db/sqlalchemy/api.py); oslo.db's own defaults are 20, 1 s, doubling.
MAX_RETRIES = 50
RETRY_INTERVAL = 0.5
DEADLOCK = 1213

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
STATE_FILES = ("mode", "release", "pid", "stop", "writes.jsonl", "requests.jsonl", "server.log")

INSERT_OLD = ("INSERT INTO images (id, name, size, status, is_public, created_at, deleted, "
              "min_disk, min_ram, protected) VALUES (%s, %s, 1024, 'active', %s, NOW(), 0, 0, 0, 0)")
INSERT_NEW = ("INSERT INTO images (id, name, size, status, visibility, created_at, deleted, "
              "min_disk, min_ram, protected) VALUES (%s, %s, 1024, 'active', %s, NOW(), 0, 0, 0, 0)")
INSERT_MEMBER = ("INSERT INTO image_members (image_id, member, can_share, created_at, deleted, status) "
                 "VALUES (%s, 'tenant-x', 0, NOW(), 0, 'accepted')")
INSERT_PROPERTY = ("INSERT INTO image_properties (image_id, name, value, created_at, deleted) "
                   "VALUES (%s, 'writer', %s, NOW(), 0)")
MAKE_PUBLIC = {OLD: "is_public = 1", NEW: "visibility = 'public'"}
DESTROY = ("UPDATE images SET deleted = 1, deleted_at = NOW(), status = 'deleted', updated_at = NOW() "
           "WHERE id = %s AND deleted = 0")
DESTROY_CHILDREN = "UPDATE {table} SET deleted = 1, deleted_at = NOW() WHERE image_id = %s AND deleted = 0"


# -- Writes: the SQL of each release ------------------------------------------

def connect(db, **options):
    """A pymysql connection to the database of ``db`` (host, port, user, password, database)."""
    import pymysql  # the project's virtualenv has it
    return pymysql.connect(host=db["host"], port=int(db["port"]), user=db["user"], password=db["password"],
                           database=db["database"], autocommit=False, connect_timeout=5,
                           read_timeout=30, write_timeout=30, **options)


def create_image(cur, release, image_id, name, kind, writer):
    """Insert an image of ``kind`` (one of the release's kinds), its member and a property."""
    if release == OLD:
        cur.execute(INSERT_OLD, (image_id, name, 1 if kind == "public" else 0))
    else:
        cur.execute(INSERT_NEW, (image_id, name, kind))
    if kind in MEMBER_KINDS:
        cur.execute(INSERT_MEMBER, (image_id,))
    cur.execute(INSERT_PROPERTY, (image_id, writer))


def make_public(cur, release, image_id):
    """Make a live image public the release's way; the number of rows found."""
    return cur.execute("UPDATE images SET %s, updated_at = NOW() WHERE id = %%s AND deleted = 0"
                       % MAKE_PUBLIC[release], (image_id,))


def destroy_image(cur, image_id):
    """Soft-delete an image with its members, properties and locations, as image_destroy does."""
    found = cur.execute(DESTROY, (image_id,))
    for table in ("image_members", "image_properties", "image_locations"):
        cur.execute(DESTROY_CHILDREN.format(table=table), (image_id,))
    return found


def expected_visibility(release, kind, row):
    """The visibility Glance's rules give this image once the upgrade is over."""
    if kind in ("public", "community"):
        return kind
    if kind in MEMBER_KINDS:
        return "shared"
    if release == NEW:
        return "private"
    # Release N-1, private: the insert trigger says 'shared'; written before
    # it (no visibility yet), the Ocata data migration says 'private'.
    return row.get("visibility") or "private"


class Deadlocked(Exception):
    """A write that still met error 1213 after every retry."""


def error_code(exc):
    args = getattr(exc, "args", None)
    return args[0] if args and isinstance(args[0], int) else None


def with_deadlock_retry(transaction, entry, rollback, max_retries=MAX_RETRIES):
    """oslo.db's wrap_db_retry with Glance's arguments, counting the 1213 errors met in ``entry``."""
    remaining = max_retries
    while True:
        try:
            return transaction()
        except Exception as exc:
            if error_code(exc) != DEADLOCK:
                raise
            entry["deadlocks"] += 1
            entry["last_deadlock"] = str(exc)[:200]
            rollback()
            if remaining == 0:
                raise Deadlocked(str(exc)) from exc
            time.sleep(RETRY_INTERVAL)  # fixed: Glance passes inc_retry_interval=False
            remaining -= 1


# -- State directory, release, process ----------------------------------------

def paths(state_dir):
    return {name: os.path.join(state_dir, name) for name in STATE_FILES}


def _read(path, default=None):
    try:
        with open(path) as handle:
            return handle.read().strip() or default
    except FileNotFoundError:
        return default


def read_mode(files):
    return _read(files["mode"], OLD)


def read_pid(files):
    try:
        return int(_read(files["pid"]))
    except (TypeError, ValueError):
        return None


def pid_alive(pid, script):
    """True if ``pid`` runs ``script`` (not a reused pid)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return os.path.basename(script).encode() in handle.read()
    except OSError:
        return False


def glance_version(release):
    """The Glance version a node of ``release`` reports (28.0.0 for 2024.1), from the collection's table."""
    spec = importlib.util.spec_from_file_location(
        "releases", os.path.join(REPO, "plugins", "module_utils", "glance_db", "releases.py"))
    releases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(releases)
    majors = dict((name, major) for name, major, _aliases in releases.RELEASES)
    # A dated release after the table: its name, which the release check reads too.
    return "%d.0.0" % majors[release] if release in majors else release


def upgrade(args):
    files = paths(args.state_dir)
    os.makedirs(args.state_dir, exist_ok=True)
    with open(files["mode"], "w") as handle:
        handle.write(args.release + "\n")
    if args.glance:
        with open(files["release"], "w") as handle:
            handle.write(args.glance + "\n")
    print("release %s%s" % (args.release, " (%s)" % args.glance if args.glance else ""))
    return 0


def version(args):
    release = _read(paths(args.state_dir)["release"])
    if not release:
        sys.stderr.write("no release recorded: run upgrade with --glance\n")
        return 1
    print(glance_version(release))
    return 0


def start(args, script, run_argv):
    """Run ``script run_argv...`` in its own session; return once its health check answers 200."""
    files = paths(args.state_dir)
    os.makedirs(args.state_dir, exist_ok=True)
    pid = read_pid(files)
    if pid and pid_alive(pid, script):
        print("already running (pid %d)" % pid)
        return 0
    if os.path.exists(files["stop"]):
        os.unlink(files["stop"])
    with open(files["server.log"], "a") as log:
        child = subprocess.Popen([sys.executable, os.path.abspath(script), "run"] + run_argv,
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True, close_fds=True)
    url = "http://127.0.0.1:%d/healthcheck" % args.port
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and child.poll() is None:
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


def stop(args, script):
    files = paths(args.state_dir)
    pid = read_pid(files)
    if not pid or not pid_alive(pid, script):
        print("not running")
        return 0
    open(files["stop"], "w").close()
    # A write may be sleeping between retries: give it their whole length.
    deadline = time.monotonic() + 10 + MAX_RETRIES * RETRY_INTERVAL
    while time.monotonic() < deadline:
        if not pid_alive(pid, script):
            print("stopped (pid %d)" % pid)
            return 0
        time.sleep(0.1)
    os.kill(pid, signal.SIGTERM)  # only the pid this state directory started
    time.sleep(0.5)
    print("terminated (pid %d)" % pid)
    return 0


def stop_requested(files, stopping, deadline):
    return stopping.is_set() or os.path.exists(files["stop"]) or time.monotonic() >= deadline


def claim_pid(files):
    """Record this process as the state directory's stand-in; a SIGTERM then asks it to stop."""
    with open(files["pid"], "w") as handle:
        handle.write(str(os.getpid()))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stopping.set())
    return stopping


def release_pid(files):
    if read_pid(files) == os.getpid():
        os.unlink(files["pid"])


# -- HTTP ---------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    """Answers /healthcheck (200 once ``ready`` is set) and names the node (X-Node) in every answer."""

    protocol_version = "HTTP/1.1"
    node = None
    ready = None

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Node", self.node)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        ok = self.path.rstrip("/") == "/healthcheck" and self.ready.is_set()
        self.answer(200 if ok else 503, {"node": self.node, "ok": ok})

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # HAProxy's health check hangs up once it has the status line.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(port, handler, node, ready, **attributes):
    """Serve ``handler`` (a Handler subclass) for ``node`` on 127.0.0.1:port in a thread."""
    bound = type(handler.__name__, (handler,), dict(attributes, node=node, ready=ready))
    server = Server(("127.0.0.1", port), bound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# -- The writing loop (rolling, galera) ---------------------------------------

class Writer(object):
    """Writes images the way one release does; one transaction per write, retried on 1213."""

    def __init__(self, node, db, files, hot=(), destroy=False, max_retries=MAX_RETRIES):
        self.node, self.db, self.hot = node, db, list(hot)
        self.destroy, self.max_retries = destroy, max_retries
        self.conn = None
        self.server = None
        self.count = 0
        self.private_ids = []
        self.own_ids = []
        self.log = open(files["writes.jsonl"], "a", buffering=1)

    def connect(self):
        if self.conn is None:
            import pymysql
            self.conn = connect(self.db, cursorclass=pymysql.cursors.DictCursor)
            with self.conn.cursor() as cur:
                # Which database node this API node writes through (galera's verify checks they differ).
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
                create_image(cur, release, image_id, "%s-%s-%d" % (self.node, release, self.count), kind, self.node)
            elif op == "update":
                make_public(cur, release, image_id)
            elif op == "touch":
                cur.execute("UPDATE images SET size = size + 1, updated_at = NOW() WHERE id = %s", (image_id,))
            else:
                destroy_image(cur, image_id)
            conn.commit()
            cur.execute("SELECT * FROM images WHERE id = %s", (image_id,))
            row = cur.fetchone()
            conn.commit()
        return row

    def rollback(self):
        try:
            self.conn.rollback()
        except Exception:
            self.drop_connection()

    def write_once(self, release):
        op, image_id = self.choose()
        kinds = OLD_KINDS if release == OLD else NEW_KINDS
        kind = {"create": kinds[self.count % len(kinds)], "update": "public"}.get(op)
        entry = {"t": time.time(), "node": self.node, "release": release, "op": op,
                 "id": image_id, "kind": kind, "deadlocks": 0}
        try:
            row = with_deadlock_retry(lambda: self.transaction(release, op, image_id, kind),
                                      entry, self.rollback, self.max_retries)
            entry.update(t_done=time.time(), server=self.server, has_is_public="is_public" in row,
                         expected=expected_visibility(release, kind, row) if kind else None, ok=True)
            if op == "create":
                # Private images are made public later; with --destroy, memberless ones are destroyed.
                if kind == "private":
                    self.private_ids.append(image_id)
                elif kind in ("public", "community") and self.destroy:
                    self.own_ids.append(image_id)
        except Exception as exc:  # a failed write is what the test counts
            entry.update(ok=False, error="%s: %s" % (type(exc).__name__, exc),
                         failed_after_retries=isinstance(exc, Deadlocked), t_done=time.time())
            self.drop_connection()
        self.log.write(json.dumps(entry, sort_keys=True) + "\n")

    def drop_connection(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None


def run(args):
    files = paths(args.state_dir)
    with open(args.db) as handle:
        db = json.load(handle)
    hot = []
    if args.hot:
        with open(args.hot) as handle:
            hot = json.load(handle)["hot"]
    stopping = claim_pid(files)
    ready = threading.Event()
    server = serve(args.port, Handler, args.node, ready)
    writer = Writer(args.node, db, files, hot, args.destroy, args.max_retries)
    deadline = time.monotonic() + args.max_seconds
    try:
        while not stop_requested(files, stopping, deadline):
            writer.write_once(read_mode(files))
            if writer.conn is not None:
                ready.set()
            time.sleep(args.interval)
    finally:
        server.shutdown()
        writer.drop_connection()
        writer.log.close()
        release_pid(files)
    return 0


def node_options(parser, max_seconds):
    """The options of ``start`` and ``run``, which ``start`` passes on."""
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="JSON file: host, port, user, password, database")
    parser.add_argument("--max-seconds", type=float, default=max_seconds)


def control_commands(sub):
    """The subcommands every stand-in has besides start and run: upgrade, version, stop."""
    p = sub.add_parser("upgrade")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--release", choices=(OLD, NEW), required=True, help="how the node writes")
    p.add_argument("--glance", help="the OpenStack release the node then runs, for version")
    for name in ("stop", "version"):
        sub.add_parser(name).add_argument("--state-dir", required=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "run"):
        p = sub.add_parser(name)
        node_options(p, 600)
        p.add_argument("--hot", help="JSON file whose 'hot' lists the images every node touches")
        p.add_argument("--destroy", action="store_true", help="also soft-delete its own images")
        p.add_argument("--max-retries", type=int, default=MAX_RETRIES, help="retries of a write on error 1213")
        p.add_argument("--interval", type=float, default=0.1)
    control_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "start":
        run_argv = ["--state-dir", args.state_dir, "--node", args.node, "--port", str(args.port),
                    "--db", args.db, "--max-seconds", str(args.max_seconds), "--interval", str(args.interval),
                    "--max-retries", str(args.max_retries)]
        run_argv += (["--hot", args.hot] if args.hot else []) + (["--destroy"] if args.destroy else [])
        return start(args, __file__, run_argv)
    if args.command == "stop":
        return stop(args, __file__)
    return {"run": run, "upgrade": upgrade, "version": version}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
