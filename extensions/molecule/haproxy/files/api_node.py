"""A stand-in Glance API node that serves image requests over HTTP (molecule `haproxy`).

It answers what a Glance client sends through the load balancer, with the
writes of the shared stand-in (../../shared/glance_standin.py: N-1 writes
``images.is_public``, N ``images.visibility``):

    POST   /v2/images              create; body {"kind": "public"|"private"|"shared"|"community"}
    PATCH  /v2/images/ID           make the image public
    DELETE /v2/images/ID           soft-delete it, as Glance does
    GET    /healthcheck            200 once it can reach the database, 503 once it is stopping

What is its own: one database connection per request, so that a node's
requests run in parallel; every request logged to ``requests.jsonl``; and on
``stop`` it stops listening first, then lets the requests in flight finish,
as a real API does behind a draining load balancer.

    api_node.py start   --state-dir D --node NAME --port P --db DB.json
    api_node.py upgrade --state-dir D --release N-1|N --glance RELEASE
    api_node.py version --state-dir D
    api_node.py stop    --state-dir D
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
import glance_standin as standin  # noqa: E402  the stand-ins' shared writes and process control

IMAGE_PATH = re.compile(r"^/v2/images/(?P<id>[0-9a-f-]{36})$")


class Node(object):
    """The image requests of one API node."""

    def __init__(self, name, db, files):
        self.name, self.db, self.files = name, db, files
        self.log = open(files["requests.jsonl"], "a", buffering=1)
        self.lock = threading.Lock()

    def connect(self):
        import pymysql
        # FOUND_ROWS, as SQLAlchemy sets it: an UPDATE that changes nothing still finds its row.
        return standin.connect(self.db, client_flag=pymysql.constants.CLIENT.FOUND_ROWS)

    def handle(self, method, image_id, kind):
        release = standin.read_mode(self.files)
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                if method == "POST":
                    image_id = str(uuid.uuid4())
                    if release == standin.OLD and kind not in standin.OLD_KINDS:
                        kind = "private+member" if kind == "shared" else "public"
                    standin.create_image(cur, release, image_id, "%s-%s" % (self.name, release), kind, self.name)
                    found = 1
                elif method == "PATCH":
                    found = standin.make_public(cur, release, image_id)
                else:
                    found = standin.destroy_image(cur, image_id)
            conn.commit()
        finally:
            conn.close()
        return release, image_id, kind, found

    def record(self, entry):
        with self.lock:
            self.log.write(json.dumps(entry, sort_keys=True) + "\n")


class ImageHandler(standin.Handler):
    api = None

    def write(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        match = IMAGE_PATH.match(self.path)
        if (method == "POST") != (self.path == "/v2/images") or (method != "POST" and not match):
            return self.answer(404, {"error": "no such resource"})
        entry = {"t": time.time(), "node": self.node, "method": method}
        try:
            release, image_id, kind, found = self.api.handle(method, match and match.group("id"), body.get("kind"))
            entry.update(release=release, id=image_id, kind=kind, ok=bool(found))
            status = (201 if method == "POST" else 200) if found else 404
            self.answer(status, {"id": image_id, "node": self.node, "release": release, "kind": kind})
        except Exception as exc:  # the client counts it as a failed request
            entry.update(ok=False, error="%s: %s" % (type(exc).__name__, exc))
            self.answer(500, {"error": entry["error"], "node": self.node})
        return self.api.record(entry)

    def do_POST(self):
        self.write("POST")

    def do_PATCH(self):
        self.write("PATCH")

    def do_DELETE(self):
        self.write("DELETE")


def run(args):
    files = standin.paths(args.state_dir)
    with open(args.db) as handle:
        db = json.load(handle)
    stopping = standin.claim_pid(files)
    node = Node(args.node, db, files)
    node.connect().close()
    ready = threading.Event()
    ready.set()
    server = standin.serve(args.port, ImageHandler, args.node, ready, api=node)
    deadline = time.monotonic() + args.max_seconds
    try:
        while not standin.stop_requested(files, stopping, deadline):
            time.sleep(0.05)
    finally:
        # Stop listening, then let requests in flight finish, as a real API does.
        ready.clear()
        server.shutdown()
        server.server_close()
        time.sleep(0.5)
        node.log.close()
        standin.release_pid(files)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "run"):
        standin.node_options(sub.add_parser(name), 300)
    standin.control_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "start":
        return standin.start(args, __file__, ["--state-dir", args.state_dir, "--node", args.node, "--port",
                                              str(args.port), "--db", args.db, "--max-seconds", str(args.max_seconds)])
    if args.command == "stop":
        return standin.stop(args, __file__)
    return {"run": run, "upgrade": standin.upgrade, "version": standin.version}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
