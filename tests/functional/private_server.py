"""A MariaDB server of a test's own, through scripts/private-mariadb (and a PostgreSQL
one that requires a client certificate, for the TLS paths of PostgreSQL).

For tests that must fill a disk, require TLS or otherwise do to a server what
the shared one on 3306 must never see::

    def test_x(private_mariadb):
        with private_mariadb(tls=True) as server:        # or datadir_size="300M", redo="16M"
            url = server.url("glance", user=server.x509_user, tls=True)

It takes a free port of 3320-3329 and a short directory of its own (the socket
path must stay under 108 characters), and stops the server, unmounts and removes
everything on the way out. A server that cannot start fails the test in CI
(CI=true) and skips it elsewhere, saying why.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import pymysql
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "private-mariadb"
PORTS = range(3320, 3330)
_RESERVED = {}  # port -> its open lock file


class PrivateMariaDB(object):
    """A running private server: its port, directories and, with TLS, the client's files."""

    def __init__(self, directory, port, lines):
        self.dir = Path(directory)
        self.datadir = self.dir / "data"
        self.port = port
        fields = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
        self.x509_user = fields.pop("x509_user", None)
        self.ssl_user = fields.pop("ssl_user", None)  # REQUIRE SSL: any TLS connection, no certificate
        self.tls = fields or None  # ssl_ca, ssl_cert, ssl_key

    def url(self, database="", user="root", tls=False):
        """A PyMySQL URL to ``database``; with ``tls``, the client certificate in its query."""
        query = "?" + urlencode(self.tls) if tls else ""
        return "mysql+pymysql://%s@127.0.0.1:%d/%s%s" % (user, self.port, database, query)

    def execute(self, sql):
        """Run ``sql`` as root; the rows it returns."""
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        finally:
            conn.close()


def _free_port():
    """A port of PORTS nothing listens on, reserved for this process (pytest-xdist runs
    several at once) by a lock held until it exits; or None."""
    for port in PORTS:
        lock = open(os.path.join(tempfile.gettempdir(), "private-server-%d.lock" % port), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))
        except OSError:
            lock.close()
            continue
        _RESERVED[port] = lock
        return port
    return None


def _release(port):
    _RESERVED.pop(port).close()


def _cannot_start(reason):
    if os.environ.get("CI"):
        pytest.fail("private MariaDB: %s (CI requires it)" % reason, pytrace=False)
    pytest.skip("private MariaDB: %s" % reason)


@contextlib.contextmanager
def start_private_mariadb(tls=False, datadir_size=None, datadir_fs=None, buffer_pool=None, redo=None,
                          log_bin=False):
    """Start a private server with the script's options; stop and remove it on exit."""
    if not shutil.which("mariadbd") or not shutil.which("mariadb-install-db"):
        _cannot_start("mariadbd or mariadb-install-db is not installed")
    if datadir_size and os.geteuid() != 0:
        _cannot_start("datadir_size needs root, to mount the datadir's filesystem")
    port = _free_port()
    if port is None:
        _cannot_start("no free port in %d-%d" % (PORTS[0], PORTS[-1]))
    directory = tempfile.mkdtemp(prefix="pm-")
    os.rmdir(directory)  # the script makes it, and removes only a directory it made
    options = ["--dir", directory, "--port", str(port)]
    for flag, value in (("--datadir-size", datadir_size), ("--datadir-fs", datadir_fs),
                        ("--buffer-pool", buffer_pool), ("--redo", redo)):
        if value:
            options += [flag, value]
    if tls:
        options.append("--tls")
    if log_bin:
        options.append("--log-bin")
    started = subprocess.run(["bash", str(SCRIPT), "start"] + options, capture_output=True, text=True,
                             timeout=180, check=False)
    if started.returncode != 0:
        _release(port)
        _cannot_start("start failed (exit %d): %s" % (started.returncode, started.stderr.strip()[-2000:]))
    try:
        yield PrivateMariaDB(directory, port, started.stdout.splitlines())
    finally:
        stopped = subprocess.run(["bash", str(SCRIPT), "stop", "--dir", directory, "--port", str(port)],
                                 capture_output=True, text=True, timeout=180, check=False)
        _release(port)
        assert stopped.returncode == 0, "private MariaDB did not stop: %s" % stopped.stderr


@pytest.fixture
def private_mariadb():
    """The factory start_private_mariadb, as a fixture: ``with private_mariadb(tls=True) as server``."""
    return start_private_mariadb


def _certificates(directory, client_cn):
    """A CA, a server certificate for 127.0.0.1 and a client one for ``client_cn``, as the script makes them."""
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), cwd=directory, capture_output=True, check=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=private test CA",
            "-keyout", "ca-key.pem", "-out", "ca.pem")
    for name, cn in (("server", "127.0.0.1"), ("client", client_cn)):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn, "-keyout", name + "-key.pem",
                "-out", name + ".csr")
        (Path(directory) / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        openssl("x509", "-req", "-days", "30", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-out", name + "-cert.pem", *(["-extfile", "server.ext"] if name == "server" else []))


@contextlib.contextmanager
def start_private_postgresql_tls():
    """A PostgreSQL of the test's own whose only way in is TLS with a client certificate
    (pg_hba: hostssl ... cert) for the user postgres. Yields (port, dict of sslrootcert,
    sslcert, sslkey). Run as the postgres user when root (the server refuses root)."""
    initdb = shutil.which("initdb") or shutil.which("/usr/lib/postgresql/15/bin/initdb")
    pg_ctl = shutil.which("pg_ctl") or shutil.which("/usr/lib/postgresql/15/bin/pg_ctl")
    if not initdb or not pg_ctl or not shutil.which("openssl"):
        _cannot_start("initdb, pg_ctl or openssl is not installed")
    port = _free_port()
    if port is None:
        _cannot_start("no free port in %d-%d" % (PORTS[0], PORTS[-1]))
    directory = tempfile.mkdtemp(prefix="pg-")
    as_server = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = os.path.join(directory, "data")
    try:
        _certificates(directory, "postgres")
        os.chmod(os.path.join(directory, "client-key.pem"), 0o600)
        if as_server:
            shutil.chown(directory, "postgres")
            for name in ("ca.pem", "server-cert.pem", "server-key.pem"):
                shutil.chown(os.path.join(directory, name), "postgres")
        os.chmod(os.path.join(directory, "server-key.pem"), 0o600)
        subprocess.run(as_server + [initdb, "-D", data, "-A", "trust"], capture_output=True, check=True)
        with open(os.path.join(data, "pg_hba.conf"), "w") as hba:
            hba.write("hostssl all all 127.0.0.1/32 cert\n")
        options = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_ca_file=%s/ca.pem "
                   "-c ssl_cert_file=%s/server-cert.pem -c ssl_key_file=%s/server-key.pem"
                   % (port, directory, directory, directory, directory))
        subprocess.run(as_server + [pg_ctl, "-D", data, "-l", os.path.join(directory, "server.log"), "-w",
                                    "-o", options, "start"], capture_output=True, check=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        _release(port)
        _cannot_start("PostgreSQL with TLS did not start: %s" % (exc.stderr or b"").decode()[-1000:])
    try:
        yield port, dict(sslrootcert=os.path.join(directory, "ca.pem"),
                         sslcert=os.path.join(directory, "client-cert.pem"),
                         sslkey=os.path.join(directory, "client-key.pem"))
    finally:
        subprocess.run(as_server + [pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True,
                       check=False)
        shutil.rmtree(directory)
        _release(port)
