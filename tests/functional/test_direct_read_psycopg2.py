"""The direct read through psycopg2, Glance's own PostgreSQL driver, when the URL
names it: the same facts as through psycopg, and psycopg never imported.

psycopg2 is not one of our requirements; real Glance's throwaway virtualenv
(tests/parity/oracle-venv) has it, so the read runs under that interpreter.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases, state

TESTS = Path(__file__).resolve().parents[1]
COLLECTIONS = TESTS.parent / ".build" / "collections"

READ = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import state
found = state.read_direct(sys.argv[2])
print(json.dumps({"facts": found and found.as_facts(),
                  "psycopg": "psycopg" in sys.modules, "psycopg2": "psycopg2" in sys.modules}))
"""


@pytest.fixture(scope="module")
def oracle_python():
    venv = subprocess.run(["bash", str(TESTS / "parity" / "oracle-venv")], capture_output=True,
                          text=True, check=False)
    assert venv.returncode == 0, "cannot make real Glance's virtualenv:\n" + venv.stderr
    return str(Path(venv.stdout.strip().splitlines()[-1]) / "bin" / "python")


@pytest.mark.parametrize("version", [None, "rocky_expand02", "train_contract01"])
def test_psycopg2_reads_what_psycopg_reads(make_database, oracle_python, version):
    db = make_database("postgresql")
    phases.run(db.engine, "sync", version=version)
    url = db.url.replace("+psycopg:", "+psycopg2:")
    done = subprocess.run([oracle_python, "-c", READ, str(COLLECTIONS), url], capture_output=True,
                          text=True, check=True)
    read = json.loads(done.stdout)
    assert read["psycopg2"] and not read["psycopg"]
    direct = state.read_direct(db.url)  # None where a data migration has rows to count
    assert read["facts"] == (direct.as_facts() if direct else None)
