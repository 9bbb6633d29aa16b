"""Print the versions the test suite runs with, and check the README's table.

    .venv/bin/python scripts/tested_with.py            the versions, exact
    .venv/bin/python scripts/tested_with.py --check    also compare README.md's
                                                       "Tested with" table

Each version comes from what the tests use: this interpreter (the .venv of
every stage, also the modules' interpreter), the servers on 127.0.0.1 (MariaDB
3306, PostgreSQL 5432), the galera-4 library scripts/galera loads, and the
ansible-core releases scripts/matrix runs (their exact versions from its
virtualenvs in the matrix cache, `scripts/matrix --cache-dir`, when they exist). The README names series
(major.minor); a series the suite does not run fails --check.
"""

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _series(version, parts=2):
    return '.'.join(re.findall(r'\d+', version)[:parts])


def ansible_core():
    import ansible.release
    text = (REPO / 'scripts' / 'matrix').read_text()
    releases = re.search(r'^ANSIBLE_RELEASES=\(([^)]*)\)', text, re.M).group(1).split()
    exact = {_series(ansible.release.__version__): ansible.release.__version__ + ' (.venv)'}
    cache = subprocess.run(['bash', str(REPO / 'scripts' / 'matrix'), '--cache-dir'],
                           capture_output=True, text=True, check=True).stdout.strip()
    for release in releases:
        python = Path(cache) / f'ansible-{release}' / 'bin' / 'python'
        if release not in exact and python.exists():
            out = subprocess.run([str(python), '-c', 'import ansible.release as r; print(r.__version__)'],
                                 capture_output=True, text=True, check=False).stdout.strip()
            exact[release] = out + ' (matrix)' if out else 'not installed yet (matrix)'
    if _series(ansible.release.__version__) not in releases:
        raise SystemExit(f'.venv runs ansible-core {ansible.release.__version__}, not one of '
                         f'scripts/matrix ANSIBLE_RELEASES {releases}')
    return ', '.join(releases), ', '.join(exact.get(r, 'not installed yet (matrix)') for r in releases)


def mariadb():
    import pymysql
    conn = pymysql.connect(host='127.0.0.1', port=3306, user='root', connect_timeout=5)
    with conn.cursor() as cur:
        cur.execute('SELECT VERSION()')
        version = cur.fetchone()[0]
    conn.close()
    return _series(version), version + ' (127.0.0.1:3306)'


def galera():
    # The library every node of scripts/galera loads (wsrep_provider).
    out = subprocess.run(['dpkg-query', '-W', '-f=${Version}', 'galera-4'],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout:
        raise SystemExit('galera-4 is not installed: bash scripts/servers install galera')
    return _series(out.stdout), out.stdout + ' (galera-4, /usr/lib/galera/libgalera_smm.so)'


def postgresql():
    import psycopg
    with psycopg.connect('host=127.0.0.1 port=5432 user=postgres dbname=postgres', connect_timeout=5) as conn:
        version = conn.execute('SHOW server_version').fetchone()[0]
    # PostgreSQL 10 and later number a major release with one number.
    return _series(version, 1), version + ' (127.0.0.1:5432)'


def collect():
    return [
        ('ansible-core',) + ansible_core(),
        ('Python', _series(sys.version), sys.version.split()[0] + f' ({sys.executable})'),
        ('MariaDB',) + mariadb(),
        ('Galera',) + galera(),
        ('PostgreSQL',) + postgresql(),
        ('SQLite', _series(sqlite3.sqlite_version), sqlite3.sqlite_version + " (Python's sqlite3)"),
    ]


def readme_table(path):
    """The rows of the table under '## Tested with': {first cell: second cell}."""
    text = path.read_text()
    match = re.search(r'^## Tested with\n(.*?)(?=^## |\Z)', text, re.M | re.S)
    if not match:
        raise SystemExit(f'{path}: no "## Tested with" section')
    rows = {}
    for line in match.group(1).splitlines():
        cells = [c.strip().strip('`') for c in line.strip().strip('|').split('|')]
        if len(cells) >= 2 and line.startswith('|') and not set(cells[1]) <= set('-: '):
            rows[cells[0]] = cells[1]
    rows.pop('', None)
    return rows


def main(argv):
    found = collect()
    for name, series, exact in found:
        print(f'{name}\t{series}\t{exact}')
    if '--check' not in argv:
        return 0
    table = readme_table(REPO / 'README.md')
    wrong = [f'{name}: README says {table.get(name)!r}, the tests run {series!r} ({exact})'
             for name, series, exact in found if table.get(name) != series]
    extra = sorted(set(table) - {row[0] for row in found})
    wrong += [f'{name}: in the README table but not checked here' for name in extra]
    for line in wrong:
        print('tested_with: ' + line, file=sys.stderr)
    return 1 if wrong else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
