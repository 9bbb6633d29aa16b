"""The collection as it is published: the built tarball, its links, its
changelog release, its docs markup and its execution environment definition.

Run by scripts/test's docs-and-package stage (not the pytest stage: these tests
build archives and call the release tools, once each).
"""

import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
# The tools read the collection from a path ending in
# ansible_collections/openstack_ops/glance (tests/conftest.py makes this link).
LINKED = REPO / '.build' / 'collections' / 'ansible_collections' / 'openstack_ops' / 'glance'
GALAXY = yaml.safe_load((REPO / 'galaxy.yml').read_text())
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"

# What only developers use: none of it may be in the archive.
FORBIDDEN = [
    (re.compile(r'^(tests|benchmarks|scripts|extensions|demo|molecule|\.build|\.ci|\.venv)(/|$)'),
     'a test, benchmark, script or tool directory'),
    (re.compile(r'(^|/)molecule(/|$)'), 'molecule files'),
    (re.compile(r'^(requirements-dev\.txt|pytest\.ini|\.ansible-lint|\.gitignore)$'), 'developer configuration'),
    (re.compile(r'^(?!docs/images/).*\.(png|jpe?g|gif|svg)$'), 'an image outside docs/images'),
    (re.compile(r'golden'), 'a parity golden file'),
    (re.compile(r'(__pycache__|\.pyc$|\.tar\.gz$)'), 'build output'),
]


def _env():
    env = dict(os.environ)
    env['PATH'] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(argv, cwd, timeout=300):
    return subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope='module')
def archive(tmp_path_factory):
    out = tmp_path_factory.mktemp('build')
    proc = _run([str(BIN / 'ansible-galaxy'), 'collection', 'build', '--output-path', str(out)], REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = out / TARBALL
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    files = sorted(m.name for m in members if m.isfile())
    print(f'\n{TARBALL}: {path.stat().st_size} bytes, {len(files)} files')
    return path, files


def test_archive_leaves_out_developer_files(archive):
    files = archive[1]
    found = [f'{name}: {why}' for name in files for pattern, why in FORBIDDEN if pattern.search(name)]
    assert not found, 'the built archive holds:\n' + '\n'.join(found)


def test_archive_holds_what_runs_and_documents_it(archive):
    files = archive[1]
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / 'plugins' / 'modules').glob('*.py'))
    needed = ['LICENSE', 'README.md', 'requirements.txt', 'bindep.txt', 'meta/runtime.yml',
              'meta/execution-environment.yml', 'docs/execution-environment.yml',
              'roles/glance_db/meta/argument_specs.yml', 'changelogs/changelog.yaml',
              'CHANGELOG.rst'] + modules
    needed += sorted(p.relative_to(REPO).as_posix() for p in (REPO / 'playbooks').glob('*.yml'))
    missing = [name for name in needed if name not in files]
    assert not missing, f'missing from the built archive: {missing}'


def test_license_matches_galaxy_yml():
    assert GALAXY['license'] == ['GPL-3.0-or-later']
    text = (REPO / 'LICENSE').read_text()
    assert text.lstrip().startswith('GNU GENERAL PUBLIC LICENSE')
    assert 'Version 3, 29 June 2007' in text
    assert 'either version 3 of the License, or' in text  # the "or later" terms it grants


def _readme_anchors():
    # GitHub-style anchors of the README's headings.
    heads = re.findall(r'^#+ (.+)$', (REPO / 'README.md').read_text(), re.M)
    return {re.sub(r'[^\w\- ]', '', h).strip().lower().replace(' ', '-') for h in heads}


@pytest.mark.parametrize('key', ['repository', 'documentation', 'issues'])
def test_galaxy_links_point_inside_the_collection(archive, key):
    files = archive[1]
    value = GALAXY[key]
    assert '://' not in value, f'{key}: {value} is a URL; no public host serves this collection'
    path, anchor = (value.split('#', 1) + [''])[:2]
    if path.endswith('/'):
        assert any(f.startswith(path) for f in files), f'{key}: no {path} in the archive'
    else:
        assert path in files, f'{key}: no {path} in the archive'
    if anchor:
        assert path == 'README.md' and anchor in _readme_anchors(), f'{key}: no heading #{anchor} in {path}'


def _tree_copy(tmp_path):
    """A copy of the tree (what git sees) at .../ansible_collections/openstack_ops/glance."""
    copy = tmp_path / 'ansible_collections' / 'openstack_ops' / 'glance'
    listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split('\0')
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / name)
    return copy


def test_changelog_lints_and_releases_1_0_0(tmp_path):
    proc = _run([str(BIN / 'antsibull-changelog'), 'lint'], REPO)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    # The release rewrites changelogs/: make it on a copy of the tree (what git sees).
    copy = _tree_copy(tmp_path)
    proc = _run([str(BIN / 'antsibull-changelog'), 'release', '--version', GALAXY['version']], copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    changelog = (copy / 'CHANGELOG.rst').read_text()
    assert f"v{GALAXY['version']}\n" in changelog
    assert 'Release Summary' in changelog
    # Every module is new in the first release (its version_added names it).
    new_modules = changelog.split('New Modules', 1)[-1]
    for module in sorted((REPO / 'plugins' / 'modules').glob('*.py')):
        assert f'openstack_ops.glance.{module.stem} - ' in new_modules, f'{module.stem} not under New Modules'


def test_archive_holds_the_changelog_of_the_version_it_builds(archive, tmp_path):
    """CHANGELOG.rst ships, and it is what antsibull-changelog releases for this
    version from the fragments as they are: a fragment added or edited since the
    release, or a hand edit, would ship a changelog that misses or contradicts a change."""
    tarball, files = archive
    assert 'CHANGELOG.rst' in files, 'the built archive has no CHANGELOG.rst'
    with tarfile.open(tarball) as tar:
        shipped = tar.extractfile('CHANGELOG.rst').read().decode()
    assert shipped == (REPO / 'CHANGELOG.rst').read_text()
    release = ['antsibull-changelog', 'release', '--version', GALAXY['version'], '--refresh-fragments']
    released = yaml.safe_load((REPO / 'changelogs' / 'changelog.yaml').read_text())['releases']
    assert GALAXY['version'] in released, f"version {GALAXY['version']} is not released: run {' '.join(release)}"
    # The release again, on a copy: fragments are kept (changelogs/config.yaml), so
    # it adds new ones to this version and rewrites edited ones.
    copy = _tree_copy(tmp_path)
    proc = _run([str(BIN / release[0])] + release[1:], copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (copy / 'CHANGELOG.rst').read_text() == shipped, \
        f"CHANGELOG.rst is not this version's release of changelogs/fragments: run {' '.join(release)} " \
        '(in .build/collections/ansible_collections/openstack_ops/glance)'


def _doc_links(name, text):
    """The relative targets of a Markdown file's links and images, outside code blocks,
    as archive paths (anchors dropped)."""
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    for target in re.findall(r'!?\[[^\]]*\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z][a-z0-9+.-]*:', target) or target.startswith('#'):
            continue  # a URL, or a heading of the same file
        yield target, posixpath.normpath(posixpath.join(posixpath.dirname(name), target.split('#')[0]))


def test_docs_link_only_to_what_ships(archive):
    """Every link and picture of a shipped document resolves inside the archive, and
    every shipped picture is shown by one (none is dead weight)."""
    tarball, files = archive
    shipped = set(files)
    broken, shown = [], set()
    with tarfile.open(tarball) as tar:
        for name in (f for f in files if f.endswith('.md')):
            for target, path in _doc_links(name, tar.extractfile(name).read().decode()):
                shown.add(path)
                if path not in shipped and not any(f.startswith(path.rstrip('/') + '/') for f in files):
                    broken.append(f'{name}: {target}')
    assert not broken, 'links to files the built archive does not hold:\n' + '\n'.join(broken)
    pictures = [f for f in files if re.search(r'\.(png|jpe?g|gif|svg)$', f)]
    assert pictures, 'docs/performance.md shows pictures: they ship in docs/images'
    assert sorted(set(pictures) - shown) == [], 'pictures no shipped document shows'


def test_role_floor_is_the_collections_floor():
    """The role's min_ansible_version is meta/runtime.yml's requires_ansible, the
    release scripts/matrix tests as the floor."""
    runtime = yaml.safe_load((REPO / 'meta' / 'runtime.yml').read_text())
    floor = re.fullmatch(r'>=(\d+\.\d+)(\.0)?', runtime['requires_ansible'])
    assert floor, f"requires_ansible is {runtime['requires_ansible']!r}, not >=X.Y.0"
    for meta in sorted(REPO.glob('roles/*/meta/main.yml')):
        found = str(yaml.safe_load(meta.read_text())['galaxy_info']['min_ansible_version'])
        assert found == floor.group(1), f'{meta.relative_to(REPO)}: min_ansible_version {found}, ' \
            f"meta/runtime.yml: {runtime['requires_ansible']}"


def test_docs_markup_lint_is_clean():
    assert LINKED.resolve() == REPO, 'tests/conftest.py links .build/collections to the repository'
    proc = _run([str(BIN / 'antsibull-docs'), 'lint-collection-docs', '--plugin-docs', '.'], LINKED, timeout=600)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_tested_with_table_matches_the_suite():
    proc = _run([sys.executable, str(REPO / 'scripts' / 'tested_with.py'), '--check'], REPO)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_execution_environment_build_context(archive, tmp_path):
    tarball = archive[0]
    # As docs/execution-environment.yml says: the tarball beside the definition.
    shutil.copy2(REPO / 'docs' / 'execution-environment.yml', tmp_path / 'execution-environment.yml')
    shutil.copy2(tarball, tmp_path / TARBALL)
    proc = _run([str(BIN / 'ansible-builder'), 'create', '-f', 'execution-environment.yml', '-c', 'context'],
                tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    context = tmp_path / 'context'
    containerfile = next(p for p in (context / 'Containerfile', context / 'Dockerfile') if p.exists())
    text = containerfile.read_text()
    assert 'ansible-core==' in text and 'introspect' in text
    assert (context / '_build' / 'collections' / TARBALL).is_file()
    requirements = yaml.safe_load((context / '_build' / 'requirements.yml').read_text())
    assert requirements['collections'][0]['name'].endswith('/' + TARBALL)


def test_execution_environment_reads_the_collections_dependencies(archive, tmp_path):
    # What the image build's introspect step finds in the installed collection.
    tarball = archive[0]
    proc = _run([str(BIN / 'ansible-galaxy'), 'collection', 'install', '--force', '-p', str(tmp_path),
                 str(tarball)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / 'ansible_collections' / 'openstack_ops' / 'glance' / 'bindep.txt').is_file()
    proc = _run([str(BIN / 'ansible-builder'), 'introspect', str(tmp_path)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = yaml.safe_load(proc.stdout.split('---', 1)[1])

    def lines(path):
        return [line.split('#')[0].strip() for line in (REPO / path).read_text().splitlines()
                if line.split('#')[0].strip()]

    assert [d.split('#')[0].strip() for d in found['python']] == lines('requirements.txt')
    assert [d.split('#')[0].strip() for d in found['system']] == lines('bindep.txt')
    assert any(d.startswith('mariadb') for d in found['system'])
    assert any(d.startswith('postgresql') for d in found['system'])


def _owner(path):
    out = subprocess.run(['dpkg', '-S', str(Path(path).resolve())], capture_output=True, text=True, check=True)
    return out.stdout.split(':')[0]


@pytest.mark.skipif(not shutil.which('dpkg'), reason='bindep.txt is checked against dpkg packages (Debian/Ubuntu)')
def test_bindep_names_the_dump_clients_this_machine_runs():
    # The mysqldump and pg_dump the backup tests run come from the packages
    # bindep.txt names for this platform (or the versioned package one of them
    # depends on: postgresql-client -> postgresql-client-15).
    proc = _run([str(BIN / 'bindep'), '-l', 'newline', '-f', str(REPO / 'bindep.txt')], REPO)
    named = set(proc.stdout.split())
    assert named == {'mariadb-client', 'postgresql-client'}, proc.stdout + proc.stderr
    provided = set(named)
    for name in named:
        depends = subprocess.run(['apt-cache', 'depends', name], capture_output=True, text=True, check=False).stdout
        provided |= set(re.findall(r'Depends: (\S+)', depends))
    pg_dump = sorted(Path('/usr/lib/postgresql').glob('*/bin/pg_dump'))
    assert shutil.which('mysqldump') and pg_dump, 'mysqldump or pg_dump missing: bash scripts/servers'
    for tool in (shutil.which('mysqldump'), pg_dump[-1]):
        assert _owner(tool) in provided, f'{tool} comes from {_owner(tool)}, which bindep.txt does not name'
