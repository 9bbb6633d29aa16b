"""scripts/servers: the plan it makes, without touching this machine's servers.

Each run is a --dry-run with PATH stripped to a few basic tools (so MariaDB,
PostgreSQL, Galera's rsync and HAProxy look absent) plus a fake apt-get that
records any call. "Answers" is real: a port where nothing listens, a port
where something listens but is no database, or the shared servers themselves
(only `SELECT 1` is sent to them).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "servers"
TOOLS = ("bash", "env", "grep", "sed", "ls", "cat", "id", "sleep", "seq", "dirname",
         "basename", "sort", "tail", "mktemp", "rm", "cut")
SERVER_PROGRAMS = ("mariadbd", "mariadb", "pg_ctlcluster", "rsync", "haproxy")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bare_path(tmp_path):
    """A PATH with basic tools only, and an apt-get that logs its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    calls = tmp_path / "apt-calls"
    apt = bin_dir / "apt-get"
    apt.write_text('#!/bin/sh\necho "apt-get $*" >> %s\n' % calls)
    apt.chmod(0o755)
    return bin_dir, calls


def run(bin_dir, *args, mysql_port=None, postgresql_port=None):
    env = {
        "PATH": str(bin_dir),
        "HOME": os.environ.get("HOME", "/root"),
        "GALERA_PROVIDER": "/nonexistent/libgalera_smm.so",
        "SERVERS_MYSQL_PORT": str(mysql_port or free_port()),
        "SERVERS_POSTGRESQL_PORT": str(postgresql_port or free_port()),
    }
    for program in SERVER_PROGRAMS:
        assert not shutil.which(program, path=env["PATH"])
    proc = subprocess.run([str(bin_dir / "bash"), str(SCRIPT), "--dry-run", *args],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def index(out, pattern):
    m = re.search(pattern, out, re.M)
    assert m, "no line matching %r in:\n%s" % (pattern, out)
    return m.start()


def test_fresh_machine_plans_install_configure_start(bare_path):
    bin_dir, calls = bare_path
    rc, out = run(bin_dir)
    assert rc == 0, out
    install = index(out, r"^servers: would install: .*apt-get install .*\bmariadb-server\b")
    line = out[install:].splitlines()[0]
    for package in ("mariadb-server", "postgresql", "galera-4", "rsync", "haproxy"):
        assert re.search(r"\b%s\b" % re.escape(package), line), line
    for server in ("mariadb", "postgresql"):
        configure = index(out, r"^servers: would configure %s: " % server)
        start = index(out, r"^servers: would start %s: " % server)
        assert install < configure < start, out
    assert index(out, r"would configure mariadb: .*skip-name-resolve")
    assert index(out, r"would configure postgresql: trust on loopback \(127\.0\.0\.1/32")
    assert "left alone" not in out
    assert not calls.exists(), "a dry run ran apt-get"


def test_servers_that_answer_are_left_alone(bare_path):
    """The shared servers answer: nothing about them is planned, whatever PATH says."""
    bin_dir, calls = bare_path
    rc, out = run(bin_dir, mysql_port=3306, postgresql_port=5432)
    assert rc == 0, out
    for server in ("mariadb", "postgresql"):
        assert re.search(r"^servers: %s: answers on 127\.0\.0\.1:\d+ .*left alone$" % server, out, re.M), out
        assert not re.search(r"would (configure|start) %s" % server, out), out
    install = out[index(out, r"^servers: would install: "):].splitlines()[0]
    assert "mariadb-server" not in install and "postgresql" not in install, install
    assert "galera-4" in install and "haproxy" in install, install
    assert not calls.exists()


def test_a_running_server_that_refuses_is_never_reconfigured(bare_path):
    """Something listens on the MariaDB port but is no MariaDB that lets root in."""
    bin_dir, calls = bare_path
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        rc, out = run(bin_dir, mysql_port=listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert rc == 1, out
    assert re.search(r"^servers: mariadb: something listens on 127\.0\.0\.1:\d+ but refuses the tests' login; left alone", out, re.M), out
    assert not re.search(r"would (configure|start) mariadb", out), out
    # PostgreSQL (nothing on its port) is still planned.
    assert index(out, r"^servers: would start postgresql: ")
    assert not calls.exists()


def test_install_one_group_for_other_tests(bare_path):
    """The Galera tests ask for their packages only: scripts/servers install galera."""
    bin_dir, calls = bare_path
    rc, out = run(bin_dir, "install", "galera")
    assert rc == 0, out
    install = out[index(out, r"^servers: would install: "):].splitlines()[0]
    assert install.endswith("--no-install-recommends galera-4 rsync"), install
    assert "configure" not in out and "start" not in out, out
    assert not calls.exists()


def test_without_apt_it_says_what_to_install(bare_path):
    bin_dir = bare_path[0]
    (bin_dir / "apt-get").unlink()
    rc, out = run(bin_dir, "install", "mariadb", "postgresql")
    assert "covers Debian and Ubuntu only" in out, out
    assert "mariadb-server" in out and "postgresql" in out, out
    assert "would install" not in out, out
