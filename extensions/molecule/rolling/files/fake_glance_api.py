"""A stand-in for one Glance API node during a rolling upgrade (molecule `rolling`).

While it runs, it keeps writing images to the Glance database the way its
release does, and logs every write with its outcome:

- release N-1 (before its node is upgraded) writes ``images.is_public``, as
  Glance did before Ocata: public, private, private with a member; and now and
  then makes one of its private images public (UPDATE is_public).
- release N (after) writes ``images.visibility``: public, private, shared with
  a member, community; and now and then makes one public (UPDATE visibility).

Its release is the content of the file ``mode`` in its state directory,
re-read before every write; the node's upgrade hook switches it.

    fake_glance_api.py start   --state-dir D --node NAME --port P --db DB.json
    fake_glance_api.py upgrade --state-dir D --release N
    fake_glance_api.py stop    --state-dir D

``start`` runs the loop in the background (its own session) and returns once
``http://127.0.0.1:P/healthcheck`` answers 200. The loop ends on ``stop`` (a
stop file), or by itself after --max-seconds, so nothing outlives a test.
Each log line (``writes.jsonl``) is a JSON object: t, node, release, op, id,
kind, ok, expected (the visibility the image must end with), error, and what
the row looked like right after the write (is_public column still there?).
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
UPDATE_EVERY = 5  # every 5th write is an update of an earlier private image

INSERT_OLD = ("INSERT INTO images (id, name, size, status, is_public, created_at, deleted, "
              "min_disk, min_ram, protected) VALUES (%s, %s, 1024, 'active', %s, NOW(), 0, 0, 0, 0)")
INSERT_NEW = ("INSERT INTO images (id, name, size, status, visibility, created_at, deleted, "
              "min_disk, min_ram, protected) VALUES (%s, %s, 1024, 'active', %s, NOW(), 0, 0, 0, 0)")
INSERT_MEMBER = ("INSERT INTO image_members (image_id, member, can_share, created_at, deleted, status) "
                 "VALUES (%s, 'tenant-x', 0, NOW(), 0, 'accepted')")


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
    """True if ``pid`` is a running fake_glance_api.py (not a reused pid)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return b"fake_glance_api.py" in handle.read()
    except OSError:
        return False


def read_pid(files):
    try:
        with open(files["pid"]) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


class Writer(object):
    """Writes images the way one release does; one transaction per write."""

    def __init__(self, node, db, files):
        self.node = node
        self.db = db
        self.files = files
        self.conn = None
        self.count = 0
        self.private_ids = []
        self.log = open(files["writes.jsonl"], "a", buffering=1)

    def connect(self):
        import pymysql  # the project's virtualenv has it
        if self.conn is None:
            self.conn = pymysql.connect(
                host="127.0.0.1", port=int(self.db["port"]), user=self.db["user"],
                password=self.db["password"], database=self.db["database"],
                autocommit=False, connect_timeout=5, read_timeout=30, write_timeout=30,
                cursorclass=pymysql.cursors.DictCursor)
        return self.conn

    def write_once(self, release):
        self.count += 1
        update = self.count % UPDATE_EVERY == 0 and self.private_ids
        entry = {"t": time.time(), "node": self.node, "release": release}
        try:
            conn = self.connect()
            with conn.cursor() as cur:
                if update:
                    image_id = self.private_ids.pop(0)
                    entry.update(op="update", id=image_id, kind="public")
                    if release == OLD:
                        cur.execute("UPDATE images SET is_public = 1 WHERE id = %s", (image_id,))
                    else:
                        cur.execute("UPDATE images SET visibility = 'public' WHERE id = %s", (image_id,))
                else:
                    image_id = str(uuid.uuid4())
                    kinds = OLD_KINDS if release == OLD else NEW_KINDS
                    kind = kinds[self.count % len(kinds)]
                    entry.update(op="insert", id=image_id, kind=kind)
                    name = "%s-%s-%d" % (self.node, release, self.count)
                    if release == OLD:
                        cur.execute(INSERT_OLD, (image_id, name, 1 if kind == "public" else 0))
                    else:
                        cur.execute(INSERT_NEW, (image_id, name, kind))
                    if kind in ("private+member", "shared"):
                        cur.execute(INSERT_MEMBER, (image_id,))
                conn.commit()
                cur.execute("SELECT * FROM images WHERE id = %s", (image_id,))
                row = cur.fetchone()
                conn.commit()
            entry["has_is_public"] = "is_public" in row
            entry["visibility_after_write"] = row.get("visibility")
            entry["expected"] = self.expected(release, entry["kind"], row)
            entry["ok"] = True
            if not update and entry["kind"] == "private":
                self.private_ids.append(image_id)
        except Exception as exc:  # a failed write is what the test counts
            entry.update(ok=False, error="%s: %s" % (type(exc).__name__, exc))
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
    with open(files["pid"], "w") as handle:
        handle.write(str(os.getpid()))
    ready = threading.Event()
    server = serve_health(args.port, ready)
    writer = Writer(args.node, db, files)
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
               "--node", args.node, "--port", str(args.port), "--db", args.db,
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
    deadline = time.monotonic() + 10
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
        p.add_argument("--max-seconds", type=float, default=180)
        p.add_argument("--interval", type=float, default=0.05)
    p = sub.add_parser("upgrade")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--release", choices=(OLD, NEW), required=True)
    p = sub.add_parser("stop")
    p.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    return {"start": start, "run": run, "upgrade": upgrade, "stop": stop}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
