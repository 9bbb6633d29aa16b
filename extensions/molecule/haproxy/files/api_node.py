"""A stand-in Glance API node that serves image requests over HTTP (molecule `haproxy`).

It answers what a Glance client sends through the load balancer, writing to
the Glance database the way its release does (the SQL of the `rolling`
scenario's stand-in, ../../rolling/files/fake_glance_api.py):

    POST   /v2/images              create; body {"kind": "public"|"private"|"shared"|"community"}
    PATCH  /v2/images/ID           make the image public
    DELETE /v2/images/ID           soft-delete it, as Glance does
    GET    /healthcheck            200 once it can reach the database

Release N-1 writes ``images.is_public``, release N ``images.visibility``;
the release is the file ``mode`` in its state directory, set by ``upgrade``.
``version`` prints the Glance version of that release (what the role's
release check asks). Every answer names the node (header X-Node), and every
request is logged to ``requests.jsonl``.

    api_node.py start   --state-dir D --node NAME --port P --db DB.json
    api_node.py upgrade --state-dir D --release N
    api_node.py version --state-dir D
    api_node.py stop    --state-dir D
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "rolling", "files"))
import fake_glance_api as rolling  # noqa: E402  the rolling scenario's writer SQL and helpers

OLD, NEW = rolling.OLD, rolling.NEW
# The Glance versions the stand-in's two releases report (2023.2 and 2024.1).
VERSIONS = {OLD: "27.0.0", NEW: "28.0.0"}
IMAGE_PATH = re.compile(r"^/v2/images/(?P<id>[0-9a-f-]{36})$")


def paths(state_dir):
    files = rolling.paths(state_dir)
    files.update(requests=os.path.join(state_dir, "requests.jsonl"))
    return files


class Node(object):
    """One database connection per request: the requests of one node run in parallel."""

    def __init__(self, name, db, files):
        self.name, self.db, self.files = name, db, files
        self.log = open(files["requests"], "a", buffering=1)
        self.lock = threading.Lock()

    def connect(self):
        import pymysql
        # FOUND_ROWS, as SQLAlchemy sets it: an UPDATE that changes nothing still finds its row.
        return pymysql.connect(host="127.0.0.1", port=int(self.db["port"]), user=self.db["user"],
                               password=self.db["password"], database=self.db["database"],
                               autocommit=False, connect_timeout=5, read_timeout=30, write_timeout=30,
                               client_flag=pymysql.constants.CLIENT.FOUND_ROWS)

    def handle(self, method, image_id, kind):
        release = rolling.read_mode(self.files)
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                if method == "POST":
                    image_id = str(uuid.uuid4())
                    name = "%s-%s" % (self.name, release)
                    if release == OLD:
                        if kind not in rolling.OLD_KINDS:
                            kind = "private+member" if kind == "shared" else "public"
                        cur.execute(rolling.INSERT_OLD, (image_id, name, 1 if kind == "public" else 0))
                    else:
                        cur.execute(rolling.INSERT_NEW, (image_id, name, kind))
                    if kind in ("private+member", "shared"):
                        cur.execute(rolling.INSERT_MEMBER, (image_id,))
                    found = 1
                elif method == "PATCH":
                    column = "is_public = 1" if release == OLD else "visibility = 'public'"
                    found = cur.execute("UPDATE images SET %s, updated_at = NOW() WHERE id = %%s AND deleted = 0"
                                        % column, (image_id,))
                else:
                    found = cur.execute("UPDATE images SET deleted = 1, deleted_at = NOW(), status = 'deleted' "
                                        "WHERE id = %s AND deleted = 0", (image_id,))
            conn.commit()
        finally:
            conn.close()
        return release, image_id, kind, found

    def record(self, entry):
        with self.lock:
            self.log.write(json.dumps(entry, sort_keys=True) + "\n")


def make_handler(node, ready):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Node", node.name)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            ok = self.path.rstrip("/") == "/healthcheck" and ready.is_set()
            self.answer(200 if ok else 503, {"node": node.name, "ok": ok})

        def write(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            match = IMAGE_PATH.match(self.path)
            if (method == "POST") != (self.path == "/v2/images") or (method != "POST" and not match):
                return self.answer(404, {"error": "no such resource"})
            entry = {"t": time.time(), "node": node.name, "method": method}
            try:
                release, image_id, kind, found = node.handle(method, match and match.group("id"), body.get("kind"))
                entry.update(release=release, id=image_id, kind=kind, ok=bool(found))
                status = (201 if method == "POST" else 200) if found else 404
                self.answer(status, {"id": image_id, "node": node.name, "release": release, "kind": kind})
            except Exception as exc:  # the client counts it as a failed request
                entry.update(ok=False, error="%s: %s" % (type(exc).__name__, exc))
                self.answer(500, {"error": entry["error"], "node": node.name})
            node.record(entry)

        def do_POST(self):
            self.write("POST")

        def do_PATCH(self):
            self.write("PATCH")

        def do_DELETE(self):
            self.write("DELETE")

        def log_message(self, *args):
            pass

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # HAProxy's health check hangs up once it has the status line.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def run(args):
    files = paths(args.state_dir)
    with open(args.db) as handle:
        db = json.load(handle)
    with open(files["pid"], "w") as handle:
        handle.write(str(os.getpid()))
    node = Node(args.node, db, files)
    node.connect().close()
    ready = threading.Event()
    ready.set()
    server = Server(("127.0.0.1", args.port), make_handler(node, ready))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stopping.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    deadline = time.monotonic() + args.max_seconds
    try:
        while not stopping.is_set() and not os.path.exists(files["stop"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        # Stop listening, then let requests in flight finish, as a real API does.
        ready.clear()
        server.shutdown()
        server.server_close()
        time.sleep(0.5)
        node.log.close()
        if rolling.read_pid(files) == os.getpid():
            os.unlink(files["pid"])
    return 0


def start(args):
    files = paths(args.state_dir)
    os.makedirs(args.state_dir, exist_ok=True)
    pid = rolling.read_pid(files)
    if pid and _alive(pid):
        print("already running (pid %d)" % pid)
        return 0
    if os.path.exists(files["stop"]):
        os.unlink(files["stop"])
    command = [sys.executable, os.path.abspath(__file__), "run", "--state-dir", args.state_dir,
               "--node", args.node, "--port", str(args.port), "--db", args.db,
               "--max-seconds", str(args.max_seconds)]
    with open(files["server.log"], "a") as log:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True, close_fds=True)
    url = "http://127.0.0.1:%d/healthcheck" % args.port
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and child.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    print("started %s (pid %d, %s)" % (args.node, child.pid, rolling.read_mode(files)))
                    return 0
        except OSError:
            pass
        time.sleep(0.1)
    with open(files["server.log"]) as log:
        sys.stderr.write("did not become healthy:\n" + log.read()[-2000:])
    return 1


def _alive(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return b"api_node.py" in handle.read()
    except OSError:
        return False


def stop(args):
    files = paths(args.state_dir)
    pid = rolling.read_pid(files)
    if not pid or not _alive(pid):
        print("not running")
        return 0
    open(files["stop"], "w").close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not _alive(pid):
            print("stopped (pid %d)" % pid)
            return 0
        time.sleep(0.1)
    os.kill(pid, signal.SIGTERM)  # only the pid this state directory started
    time.sleep(0.5)
    print("terminated (pid %d)" % pid)
    return 0


def version(args):
    print(VERSIONS[rolling.read_mode(paths(args.state_dir))])
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
        p.add_argument("--max-seconds", type=float, default=300)
    p = sub.add_parser("upgrade")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--release", choices=(OLD, NEW), required=True)
    for name in ("stop", "version"):
        sub.add_parser(name).add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    if args.command == "upgrade":
        return rolling.upgrade(args)
    return {"start": start, "run": run, "stop": stop, "version": version}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
