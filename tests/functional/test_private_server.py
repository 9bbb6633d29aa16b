"""scripts/private-mariadb and its test helper: a server of a test's own, whose datadir
may lie on a small filesystem of its own (disk-full tests), removed without a trace."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from private_server import SCRIPT, private_mariadb  # noqa: F401  pylint: disable=unused-import

MIB = 1 << 20


def _mounted(path):
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


@pytest.mark.parametrize("fs", ["ext4", "tmpfs"])
def test_datadir_on_a_filesystem_of_the_given_size(private_mariadb, fs):
    with private_mariadb(datadir_size="120M", datadir_fs=fs, redo="8M") as server:
        assert server.execute("SELECT @@datadir")[0][0].rstrip("/") == str(server.datadir)
        assert _mounted(server.datadir)
        disk = os.statvfs(server.datadir)
        size = disk.f_blocks * disk.f_frsize
        assert 100 * MIB < size <= 120 * MIB, size  # ext4 keeps some for itself
        # Its tables are files on that filesystem, not on the one holding the directory.
        server.execute("CREATE DATABASE filler")
        server.execute("CREATE TABLE filler.t (b LONGBLOB) ENGINE=InnoDB")
        table = os.stat(server.datadir / "filler" / "t.ibd")
        assert table.st_dev == os.stat(server.datadir).st_dev != os.stat(server.dir).st_dev
        directory = server.dir
    assert not _mounted(directory / "data")
    assert not directory.exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop it")
def test_datadir_size_without_root_fails_with_one_clear_message():
    directory = tempfile.mkdtemp(prefix="pm-")
    os.rmdir(directory)
    done = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", str(SCRIPT), "start",
         "--dir", directory, "--port", "3329", "--datadir-size", "50M"],
        capture_output=True, text=True, timeout=60, check=False, cwd="/")
    assert done.returncode != 0
    assert "--datadir-size needs root" in done.stderr, done.stderr
    assert done.stdout == ""
    assert not os.path.exists(directory)
