"""The HAProxy runtime API client against a real HAProxy (the Debian package, unprivileged, loopback).

The molecule `haproxy` scenario runs a whole upgrade through it; these cases
are the ones it does not reach: a node whose health check does not pass stays
drained, a wrong server name is named, connections still open are waited for.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import haproxy


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api(object):
    """A health check endpoint whose answer the test switches, and that can hold a request open."""

    def __init__(self):
        self.healthy = True
        self.hold = threading.Event()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/slow":
                    api.hold.wait(10)
                ok = api.healthy or self.path != "/healthcheck"
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def lb(tmp_path):
    assert shutil.which("haproxy"), "haproxy is missing: bash scripts/servers install haproxy"
    api = Api()
    sock, front = str(tmp_path / "admin.sock"), free_port()
    (tmp_path / "haproxy.cfg").write_text(
        "global\n  stats socket %s level admin\n"
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 20s\n  timeout server 20s\n"
        "frontend fe\n  bind 127.0.0.1:%d\n  default_backend glance_api\n"
        "backend glance_api\n  option httpchk GET /healthcheck\n  default-server inter 200ms fall 1 rise 2\n"
        "  server api1 127.0.0.1:%d check\n" % (sock, front, api.server.server_address[1]))
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if haproxy.server_stat(sock, "glance_api", "api1")["status"] == "UP":
                break
        except haproxy.HaproxyError:
            pass
        time.sleep(0.1)
    yield api, sock, front
    api.hold.set()
    proc.terminate()
    proc.wait(10)
    api.server.shutdown()


def test_drain_waits_for_open_connections_then_ready_takes_requests(lb):
    api, sock, front = lb
    slow = threading.Thread(target=lambda: socket.create_connection(("127.0.0.1", front)).sendall(
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n") or time.sleep(3))
    slow.start()
    time.sleep(0.3)
    threading.Timer(1.0, api.hold.set).start()  # the request in flight ends after a second
    drained = haproxy.drain(sock, "glance_api", "api1", timeout=8)
    assert drained["idle"] and drained["connections_left"] == 0 and drained["status"] == "MAINT"
    assert drained["waited"] >= 0.5
    ready = haproxy.ready(sock, "glance_api", "api1", timeout=8)
    assert ready["status"] == "UP" and ready["check_status"] == "L7OK"
    slow.join()


def test_a_node_whose_check_fails_stays_drained(lb):
    api, sock, _front = lb
    haproxy.drain(sock, "glance_api", "api1", timeout=2)
    api.healthy = False
    with pytest.raises(haproxy.HaproxyError) as failure:
        haproxy.ready(sock, "glance_api", "api1", timeout=2)
    assert "does not see glance_api/api1 healthy after 2 s" in str(failure.value)
    assert "it stays drained" in str(failure.value)
    assert haproxy.server_stat(sock, "glance_api", "api1")["status"].startswith(("DRAIN", "DOWN"))


def test_a_wrong_name_or_socket_is_named(lb, tmp_path):
    _api, sock, _front = lb
    with pytest.raises(haproxy.HaproxyError, match=r"no server glance_api/api9 \(it has: glance_api/api1\)"):
        haproxy.drain(sock, "glance_api", "api9", timeout=1)
    with pytest.raises(haproxy.HaproxyError, match="did not answer 'show stat'.*glance_db_haproxy_socket"):
        haproxy.server_stat(str(tmp_path / "nothere.sock"), "glance_api", "api1")
