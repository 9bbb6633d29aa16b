"""kolla-ansible 23.0.0's own files, from the wheel pinned in tests/vendor/kolla-ansible/.

The wheel is downloaded once with its sha256 checked (pip --require-hashes) into
.build/kolla-ansible/ and unzipped there; nothing is installed. ``share()`` is
the wheel's share/kolla-ansible directory: ansible/inventory/multinode,
ansible/group_vars/, etc_examples/kolla/passwords.yml, ansible/roles/.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIN = REPO / "tests" / "vendor" / "kolla-ansible" / "requirements.txt"
CACHE = REPO / ".build" / "kolla-ansible"
VERSION = "23.0.0"
SHARE = "kolla_ansible-%s.data/data/share/kolla-ansible" % VERSION


def share():
    """The unzipped share/kolla-ansible of the pinned wheel; RuntimeError when it cannot be had."""
    unzipped = CACHE / "unzipped"
    if (unzipped / SHARE / "ansible" / "inventory" / "multinode").is_file():
        return unzipped / SHARE
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers share the cache
        if not (unzipped / SHARE / "ansible" / "inventory" / "multinode").is_file():
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                 "--dest", str(CACHE / "wheel"), "-r", str(PIN)],
                capture_output=True, text=True, timeout=600, check=False, env=dict(os.environ, PIP_NO_INPUT="1"))
            wheels = sorted((CACHE / "wheel").glob("kolla_ansible-%s-*.whl" % VERSION))
            if done.returncode != 0 or not wheels:
                raise RuntimeError("cannot download the pinned kolla-ansible %s wheel (%s):\n%s"
                                   % (VERSION, PIN, (done.stderr or done.stdout)[-2000:]))
            with zipfile.ZipFile(wheels[0]) as wheel:
                wheel.extractall(unzipped)
    return unzipped / SHARE
