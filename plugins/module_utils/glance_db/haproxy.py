# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client of HAProxy's runtime API (the ``stats socket``, level admin).

Takes one API server out of its backend and puts it back around a node
upgrade: drain it, wait until its connections are done, keep it in
maintenance while it restarts, wait for its health check, make it ready.
Plain Python (the standard library's unix sockets), so it runs on the load
balancer host without ``socat`` or ``community.general``.
"""

from __future__ import annotations

import csv
import io
import socket
import time

from .errors import GlanceDbError

# `show stat` of a server whose checks passed: UP, or UP but drained.
_HEALTHY = ("UP", "DRAIN")
_CHECK_PASSED = ("L4OK", "L6OK", "L7OK", "L7OKC")


class HaproxyError(GlanceDbError):
    """The runtime API refused a command or the server did not reach a state."""


def command(path, line, timeout=10.0):
    """Send one runtime API command to the socket at ``path`` and return its answer."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(path)
        conn.sendall(line.encode("ascii") + b"\n")
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:
        raise HaproxyError("HAProxy's runtime API at %s did not answer %r: %s. Check glance_db_haproxy_socket "
                           "and that the socket is `stats socket %s level admin`." % (path, line, exc, path))
    finally:
        conn.close()
    return b"".join(chunks).decode("utf-8", "replace")


def server_stat(path, backend, server):
    """The `show stat` row of ``backend/server`` as a dict (scur, status, check_status, ...)."""
    answer = command(path, "show stat")
    rows = list(csv.DictReader(io.StringIO(answer.lstrip("# "))))
    for row in rows:
        if row.get("pxname") == backend and row.get("svname") == server:
            return row
    known = sorted("%s/%s" % (r.get("pxname"), r.get("svname")) for r in rows
                   if r.get("svname") not in ("FRONTEND", "BACKEND"))
    raise HaproxyError("HAProxy at %s has no server %s/%s (it has: %s). Set glance_db_haproxy_backend and "
                       "glance_db_haproxy_server to the names in its configuration."
                       % (path, backend, server, ", ".join(known) or "none"))


def set_state(path, backend, server, state, health=None):
    """``set server BACKEND/SERVER state ready|drain|maint`` (and ``health``, in the same line).

    The answer is empty on success.
    """
    line = "set server %s/%s state %s" % (backend, server, state)
    if health:
        line += "; set server %s/%s health %s" % (backend, server, health)
    answer = command(path, line).strip()
    if answer:
        raise HaproxyError("HAProxy at %s refused to set %s/%s to %s: %s" % (path, backend, server, state, answer))


def _wait(path, backend, server, done, timeout, interval):
    deadline = time.monotonic() + timeout
    while True:
        row = server_stat(path, backend, server)
        if done(row) or time.monotonic() >= deadline:
            return row, done(row)
        time.sleep(interval)


def drain(path, backend, server, timeout, interval=0.2):
    """Send no new request to the server, then wait (up to ``timeout`` s) until it has no connection.

    Then put it in maintenance, so health checks stop and it cannot come back
    by itself while it restarts. Returns what happened.
    """
    before = server_stat(path, backend, server)
    set_state(path, backend, server, "drain")
    started = time.monotonic()
    row, idle = _wait(path, backend, server,
                      lambda r: int(r.get("scur") or 0) == 0 and int(r.get("qcur") or 0) == 0,
                      timeout, interval)
    waited = time.monotonic() - started
    set_state(path, backend, server, "maint")
    return {"status_before": before.get("status"), "idle": idle, "waited": round(waited, 3),
            "connections_left": int(row.get("scur") or 0), "status": server_stat(path, backend, server).get("status")}


def ready(path, backend, server, timeout, interval=0.2):
    """Leave maintenance drained, wait for the health check to pass, then take requests again.

    A server leaving maintenance is UP at once on its last check from before
    (measured on HAProxy 2.6): marked down as it leaves, it comes up only
    after ``rise`` fresh checks. Raises when they do not pass within
    ``timeout`` s: the server then stays drained, so no request goes to a
    node that does not answer.
    """
    set_state(path, backend, server, "drain", health="down")
    started = time.monotonic()
    row, healthy = _wait(path, backend, server,
                         lambda r: r.get("status") in _HEALTHY and r.get("check_status") in _CHECK_PASSED,
                         timeout, interval)
    if not healthy:
        raise HaproxyError(
            "HAProxy at %s does not see %s/%s healthy after %d s (status %s, check %s %s); it stays drained. "
            "Fix the node, then run `set server %s/%s state ready` on the runtime API or run the node entry point again."
            % (path, backend, server, timeout, row.get("status"), row.get("check_status"), row.get("check_desc", ""),
               backend, server))
    waited = time.monotonic() - started
    set_state(path, backend, server, "ready")
    return {"waited": round(waited, 3), "check_status": row.get("check_status"),
            "status": server_stat(path, backend, server).get("status")}
