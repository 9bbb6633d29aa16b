"""The README's main command on a fresh copy of the tree: `bash scripts/demo`
installs what running the collection needs and nothing of the development
toolchain, syncs a new SQLite database, prints its state once, and finds
nothing to do the second time."""

import json
import re
import subprocess
import time
from pathlib import Path

from test_package import REPO, _tree_copy


def _names(path):
    """Package names a requirements file lists, normalised as pip lists them."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split('#')[0].strip()
        if line:
            names.add(re.split(r'[\[<>=!~; ]', line, maxsplit=1)[0].lower().replace('_', '-'))
    return names


def _demo(tree):
    started = time.monotonic()
    done = subprocess.run(['bash', 'scripts/demo'], cwd=tree, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr, time.monotonic() - started


def test_demo_installs_only_what_the_main_job_needs(tmp_path):
    tree = _tree_copy(tmp_path)
    first, seconds = _demo(tree)
    venv = tree / 'demo' / '.venv'
    size = subprocess.run(['du', '-sm', str(venv)], capture_output=True, text=True, check=True).stdout.split()[0]
    listed = subprocess.run([str(venv / 'bin' / 'python'), '-m', 'pip', 'list', '--format=json'],
                            capture_output=True, text=True, check=True).stdout
    installed = {p['name'].lower().replace('_', '-') for p in json.loads(listed)}
    print(f'\nfirst run {seconds:.1f} s, demo/.venv {size} MB, {len(installed)} packages')

    needed = _names(REPO / 'requirements.txt') | {'ansible-core'}
    assert needed <= installed, f'missing from demo/.venv: {sorted(needed - installed)}'
    development = _names(REPO / 'requirements-dev.txt') - needed
    assert development & installed == set(), f'development tools in demo/.venv: {sorted(development & installed)}'
    assert not (tree / '.venv').exists(), 'the demo built the development .venv'

    # The state once: the role's few lines, not the registered dict after them.
    assert first.count('"Glance database: sqlite') == 2, first  # before the sync, and by the facts play
    assert '"glance_db_state": {' not in first, first
    assert re.search(r'"Revisions applied \(\d+\):",\n +"  liberty, mitaka01, mitaka02, ', first), first
    assert re.search(r'localhost +: ok=\d+ +changed=1 ', first), first

    again = _demo(tree)[0]
    assert 'bootstrap:' not in again, again  # nothing installed the second time
    recaps = re.findall(r'localhost +: ok=\d+ +changed=(\d+) .*failed=0', again)
    assert recaps == ['0', '0'], again
    assert Path(tree / 'demo' / 'glance.sqlite').is_file()
