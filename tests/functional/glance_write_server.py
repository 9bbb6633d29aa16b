"""Real Glance 33's own DB API writing one image's life per database, in the oracle virtualenv.

    <oracle venv>/bin/python glance_write_server.py        # serve: one database URL a line on stdin
    <oracle venv>/bin/python glance_write_server.py URL    # one write, then exit

For each URL it makes the writes of one Glance API request each (see
../shared/TOOLCHAIN.md, "Real Glance as the client"): ``image_create`` with two
properties, ``image_tag_create``, ``image_member_create``, ``image_location_add`` and
``image_update``, through ``glance.db.sqlalchemy.api`` with Glance's own retry rules
(only image_create/update/destroy retry a deadlock), and prints one JSON line:
``{"ok": true, "image_id": ...}`` or ``{"ok": false, "call": ..., "code": 1146,
"error": ...}``. Glance's configuration is process-wide, so the server imports Glance
once and forks a child per URL (about 0.1 s a write instead of 1 s). Used by
kill_points.py; glance_client.py is the load of many nodes, this is one write.

Runs under the oracle's Python only: it imports nothing of the collection.
"""

import json
import os
import re
import sys
import tempfile
import uuid
import warnings

warnings.simplefilter("ignore")

from glance.common import config  # noqa: E402,F401  pylint: disable=unused-import  # registers Glance's options
from glance import context as glance_context  # noqa: E402
from glance.db.sqlalchemy import api  # noqa: E402
from oslo_config import cfg  # noqa: E402


def _code(exc):
    """The server's error number in a driver error, wherever oslo.db wrapped it."""
    seen = exc
    for _depth in range(6):
        args = getattr(seen, "args", ())
        if args and isinstance(args[0], int):
            return args[0]
        inner = getattr(seen, "orig", None) or getattr(seen, "inner_exception", None) or seen.__cause__
        if inner is None:
            break
        seen = inner
    found = re.search(r"\((\d{4}),", str(exc))
    return int(found.group(1)) if found else None


def write(url):
    """The writes of one image's life in Glance 33; a dict saying how it went."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as conf:
        conf.write("[database]\nconnection = %s\n" % url)
    try:
        cfg.CONF(["--config-file", conf.name], project="glance")
    finally:
        os.unlink(conf.name)
    owner = "kp-owner"
    ctx = glance_context.RequestContext(is_admin=True, project_id=owner, user_id="kp-user")
    image_id = str(uuid.uuid4())
    calls = [
        ("image_create", lambda: api.image_create(ctx, {
            "id": image_id, "name": "kill-point", "status": "queued", "visibility": "shared",
            "disk_format": "raw", "container_format": "bare", "size": 1, "owner": owner,
            "properties": {"kp_a": "1", "kp_b": "2"}})),
        ("image_tag_create", lambda: api.image_tag_create(ctx, image_id, "kp-tag")),
        ("image_member_create", lambda: api.image_member_create(ctx, {
            "image_id": image_id, "member": "kp-member", "can_share": False, "status": "pending"})),
        ("image_location_add", lambda: api.image_location_add(ctx, image_id, {
            "url": "file:///kp/%s" % image_id, "metadata": {"store": "fast"}, "status": "active"})),
        ("image_update", lambda: api.image_update(ctx, image_id, {"name": "kill-point-renamed",
                                                                  "visibility": "public"})),
    ]
    for name, call in calls:
        try:
            call()
        except Exception as exc:  # noqa: BLE001  reported to the test, which fails naming it
            return {"ok": False, "call": name, "code": _code(exc), "error": ("%s: %s" % (
                type(exc).__name__, exc)).splitlines()[0][:400], "image_id": image_id}
    return {"ok": True, "image_id": image_id}


def _child(url, out):
    try:
        result = write(url)
    except BaseException as exc:  # noqa: BLE001  even a configuration error is one JSON line
        result = {"ok": False, "call": "setup", "code": None, "error": repr(exc)[:400]}
    out.write(json.dumps(result) + "\n")
    out.flush()


def serve():
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever Glance prints stays off the answers
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        url = line.strip()
        if not url:
            continue
        read, written = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            with os.fdopen(written, "w") as pipe:
                _child(url, pipe)
            os._exit(0)
        os.close(written)
        with os.fdopen(read) as pipe:
            answer = pipe.read().strip()
        os.waitpid(pid, 0)
        out.write((answer or json.dumps({"ok": False, "call": "fork", "code": None,
                                         "error": "the writer died"})) + "\n")
        out.flush()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child(sys.argv[1], sys.stdout)
    else:
        serve()
