"""Our glance-api.conf reader against real Glance's own reading of the same files.

A seeded generator writes a few hundred sets of config files (``$$``, ``\\$``,
``$name`` to registered and unknown options, ``[DEFAULT]`` against ``[database]``,
several files and a config directory overriding each other, the old option names,
odd whitespace, quotes, comments and continuation lines); one process of the
oracle virtualenv (tests/parity/oracle-venv) reads them all with oslo.config after
registering Glance's options the way glance-manage does (glance_conf_oracle.py).
Where Glance gets a URL we must get the same one; where it fails we must refuse.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from pathlib import Path

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import glance_conf
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import ConfigurationError

HERE = Path(__file__).resolve().parent
ORACLE_VENV_SCRIPT = HERE.parent / "parity" / "oracle-venv"
ORACLE = HERE / "glance_conf_oracle.py"
OPTIONS_MODULE = HERE.parents[1] / "plugins" / "module_utils" / "glance_db" / "glance_conf_options.py"
SEED = 20261201
CASES = 400


@pytest.fixture(scope="module")
def oracle_python():
    venv = subprocess.run(["bash", str(ORACLE_VENV_SCRIPT)], capture_output=True, text=True,
                          check=False)
    assert venv.returncode == 0, "cannot make real Glance's virtualenv:\n" + venv.stderr
    return str(Path(venv.stdout.strip().splitlines()[-1]) / "bin" / "python")


@pytest.fixture(scope="module")
def oracle(oracle_python, tmp_path_factory):
    """(cases, Glance's answers, Glance's option table as our module's text), from one process."""
    root = tmp_path_factory.mktemp("glance-conf")
    cases = make_cases(root)
    done = subprocess.run([oracle_python, str(ORACLE), "cases"], capture_output=True, text=True,
                          cwd=str(root), check=False, input=json.dumps(cases))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    return cases, answer["results"], answer["module"]


def test_option_table_is_glances(oracle):
    """The options the reader may substitute are exactly those glance-manage registers."""
    assert oracle[2] == OPTIONS_MODULE.read_text(), (
        "Glance's options changed: regenerate %s with `%s module`" % (OPTIONS_MODULE, ORACLE))


# ---- the generator

# Passwords, as written in the file, and what they may hide.
PASSWORDS = ["s3cret", "pa$$word", "pa\\$word", "pa$$$$w", "$$lead", "end$$", "p$word", "p${word}x",
             "pa$", "p$1x", "p$-x", "p%40ss", "we$$ird$$", "p$$${x"]
# Path parts of a SQLite URL: registered options, unknown names, escapes, odd forms.
PATHS = ["/var/lib/glance", "$state_path", "${state_path}", "$$state_path", "\\$state_path",
         "$image_cache_dir", "${image_cache_dir}/x", "$backend", "${max_pool_size}", "$debug",
         "$database.backend", "${database.max_overflow}", "$DEFAULT.debug", "$Debug",
         "$metadata_source_path", "$mysql_sql_mode", "$node_staging_uri", "$profiler",
         "$profiler.enabled", "$profiler.nope", "$use_stderr", "$connection_trace",
         "$enabled_backends", "$default_log_levels", "$pydev_worker_debug_host", "$command",
         "$image_size_cap", "$user_storage_quota", "${image_cache_sqlite_db}", "$paste_deploy.flavor",
         "$log_dir", "$database", "$sqlite_synchronous", "$db_max_retries", "$1", "$", "${}",
         "$wsgi.python_interpreter", "$image_cache_driver"]
# Settings that the substitutions above may pick up.
SETTINGS = [("DEFAULT", "image_cache_dir", "/srv/cache"), ("DEFAULT", "image_cache_dir", "$metadata_source_path"),
            ("DEFAULT", "image_cache_dir", "$state_path/c"), ("DEFAULT", "debug", "yes"),
            ("DEFAULT", "debug", "maybe"), ("DEFAULT", "debug", "Off"), ("database", "max_pool_size", "07"),
            ("database", "max_pool_size", "lots"), ("database", "max_pool_size", " "), ("database", "backend", "$connection"),
            ("database", "backend", "$$x"), ("DEFAULT", "image_cache_driver", "XATTR"),
            ("DEFAULT", "image_cache_driver", "nfs"), ("database", "connection_debug", "101"),
            ("DEFAULT", "state_path", "/var/lib/glance"), ("DEFAULT", "metadata_source_path", "/m/$backend"),
            ("database", "metadata_source_path", "/db-group"), ("profiler", "enabled", "true"),
            ("DEFAULT", "user_storage_quota", "1GB"), ("DEFAULT", "log_dir", "/var/log/glance"),
            ("DEFAULT", "logdir", "/old/logdir"), ("paste_deploy", "flavor", "keystone")]
SECTIONS = ["[database]"] * 6 + ["[DATABASE]", "[Database]", "[ database ]", "[DEFAULT]", "[default]", "[sql]"]
KEYS = ["connection"] * 8 + ["Connection", "sql_connection", "connection\t"]
# Lines oslo.config refuses to parse; a few cases get one.
FLAWS = [["connection = sqlite:////before-any-section"], ["[database]", "max_pool_size = 5", "", "   sqlite:////x"],
         ["[database"], ["[]"], ["[database]", "connection"], ["[database]", " connection = sqlite:////x"],
         ["[database]", "= sqlite:////x"]]


def _url(rng):
    shape = rng.randrange(4)
    if shape == 0:
        return "sqlite:///%s/glance.sqlite" % rng.choice(PATHS)
    if shape == 1:
        return "sqlite:////%s" % rng.choice(["g.db", "x/y.sqlite", "a b.db", "$state_path.db"])
    scheme = rng.choice(["mysql+pymysql", "mysql", "postgresql", "postgresql+psycopg2"])
    host = rng.choice(["db", "127.0.0.1:3306", "db.example.org", "$backend", "[::1]:5432"])
    query = rng.choice(["", "", "?charset=utf8", "?a=$$b"])
    return "%s://glance:%s@%s/glance%s" % (scheme, rng.choice(PASSWORDS), host, query)


def _assignment(rng, key, value):
    """One option line in one of the spellings oslo.config accepts, or nearly."""
    form = rng.randrange(14)
    if form == 0:
        return ["%s=%s" % (key, value)]
    if form == 1:
        return ["%s : %s" % (key, value)]
    if form == 2:
        return ['%s = "%s"' % (key, value)]
    if form == 3:
        return ["%s = '%s'" % (key, value)]
    if form == 4:
        return ['%s = "%s\'' % (key, value)]
    if form == 5:
        return ["%s = %s   # a comment" % (key, value)]
    if form == 6:
        return ["%s =" % key, "    %s" % value]  # a multi-line value
    if form == 7:
        return ["%s = %s" % (key, value), "\t# indented: continues the value"]
    if form == 8:
        return ["%s\t=\t%s \t" % (key, value)]
    if form == 9:
        return ["%s = " % key]
    return ["%s = %s" % (key, value)]


def _file_lines(rng):
    lines = []
    for _block in range(rng.randrange(1, 5)):
        kind = rng.random()
        if kind < 0.5:
            lines.append(rng.choice(SECTIONS))
            lines += _assignment(rng, rng.choice(KEYS), _url(rng))
        elif kind < 0.8:
            group, key, value = rng.choice(SETTINGS)
            lines.append("[%s]" % group)
            lines += _assignment(rng, key, value)
        elif kind < 0.87:
            lines += ["[database]", "# connection = sqlite:////commented", "; connection = sqlite:////semi"]
        else:
            lines += ["[keystone_authtoken]", "password = x$y", "[x]"]
        if rng.random() < 0.3:
            lines.append(rng.choice(["", "   ", "# note", "\t"]))
    return lines


def _write(path, rng, lines):
    if rng.random() < 0.03:
        at = rng.randrange(len(lines) + 1)
        lines = lines[:at] + rng.choice(FLAWS) + lines[at:]
    newline = rng.choice(["\n"] * 6 + ["\r\n", "\r"])
    text = newline.join(lines) + rng.choice([newline, "", newline * 2])
    if rng.random() < 0.01:
        text = "\ufeff" + text  # oslo.config reads a byte-order mark as part of the first line
    path.write_bytes(text.encode("utf-8"))


def make_cases(root, seed=SEED, count=CASES):
    """Sets of config files, each {"files": [...], "dir": path or None}."""
    rng = random.Random(seed)
    cases = []
    for number in range(count):
        case_dir = root / ("case%03d" % number)
        case_dir.mkdir()
        files = []
        for index in range(rng.choice([1, 1, 1, 2, 2, 3])):
            path = case_dir / ("glance-api-%d.conf" % index)
            _write(path, rng, _file_lines(rng))
            files.append(str(path))
        config_dir = None
        if rng.random() < 0.4:
            conf_d = case_dir / "glance-api.conf.d"
            conf_d.mkdir()
            for name in rng.sample(["10-db.conf", "20-db.conf", "09-x.conf", ".hidden.conf", "99.conf.bak",
                                    "db.txt", "Z.conf", "a.conf"], rng.randrange(0, 4)):
                _write(conf_d / name, rng, _file_lines(rng))
            config_dir = str(conf_d)
        # glance-manage's default directories, under this case's HOME: read only without a config_dir.
        home = case_dir / "home"
        home.mkdir()
        if rng.random() < 0.3:
            for where in rng.sample([".glance/glance.conf.d", ".glance/glance-api.conf.d", "glance.conf.d",
                                     "glance-api.conf.d", ".glance/glance-manage.conf.d",
                                     "glance-manage.conf.d"], rng.randrange(1, 4)):
                (home / where).mkdir(parents=True)
                _write(home / where / rng.choice(["db.conf", "50.conf"]), rng, _file_lines(rng))
        # oslo.config's environment source: OS_GROUP__NAME wins over the files.
        env = {}
        if rng.random() < 0.12:
            env = dict(rng.sample([("OS_DATABASE__CONNECTION", _url(rng)), ("OS_DEFAULT__IMAGE_CACHE_DIR", "/env"),
                                   ("OS_DATABASE__BACKEND", "env$$x"), ("OS_DEFAULT__DEBUG", "nope"),
                                   ("OS_DATABASE__MAX_POOL_SIZE", "12")], rng.randrange(1, 3)))
        cases.append({"files": files, "dir": config_dir, "home": str(home), "env": env})
    return cases


def ours(case):
    saved = dict(os.environ)
    os.environ.update(case["env"], HOME=case["home"])
    try:
        return {"url": glance_conf.read(case["files"], case["dir"]).connection}
    except ConfigurationError as exc:
        return {"refused": str(exc)}
    finally:
        os.environ.clear()
        os.environ.update(saved)


# What our refusal must say for each way real Glance fails. Where the password has
# a $, the refusal names no variable (it could be a piece of the password).
HIDDEN = r"|^\[database\] connection has a \$ in its user name or password"
EXPECTED_REFUSAL = {
    "NoSuchOptError": r"uses \$%s\b" + HIDDEN,
    "NoSuchGroupError": r"uses \$%s\b" + HIDDEN,
    "TemplateSubstitutionError": r"uses \$%s\b" + HIDDEN,
    "ConfigFileParseError": r"^Cannot read .* line \d+",
    "ConfigFileValueError": r"is not a valid" + HIDDEN,
    "RecursionError": r"refers to itself" + HIDDEN,
    "SystemExit": r"\[DEFAULT\] %s is not a valid|uses \$",
}


def _unresolved(error):
    """The $name an oslo.config error is about, if it names one."""
    match = re.search(r"no such option '?([\w.]+)'? in group|no such group \[?'?([\w.]+)|"
                      r"substituting group (\S+) not supported|option ([\w.]+) in group|"
                      r"argument --(\w+): Invalid", error)
    return next((g for g in match.groups() if g), None) if match else None


def compare(case, oracle, mine):
    """None when we agree with Glance, else what differs."""
    if oracle.get("url"):
        if mine.get("url") == oracle["url"]:
            return None
        if "write its value itself" in mine.get("refused", ""):
            return None  # a list, dict or host option in a URL: we refuse, on purpose
        return "Glance reads %r, we %r" % (oracle["url"], mine)
    if "url" in oracle:  # no connection at all
        ok = "No [database] connection found" in mine.get("refused", "")
        return None if ok else "Glance finds no connection, we %r" % (mine,)
    kind = oracle["error"].split(":")[0]
    pattern = EXPECTED_REFUSAL.get(kind)
    if "refused" not in mine:
        return "Glance fails (%s), we read %r" % (oracle["error"], mine["url"])
    if pattern is None:
        return "Glance fails with %s, unknown to this test" % oracle["error"]
    if "%s" in pattern:
        name = _unresolved(oracle["error"]) or ""
        pattern = pattern % re.escape(name)
    if not re.search(pattern, mine["refused"]):
        return "Glance fails (%s), we refuse with %r" % (oracle["error"], mine["refused"])
    return None


def test_reader_reads_what_glance_reads(oracle):
    cases, oracle = oracle[:2]
    differences = []
    outcomes = {}
    for number, (case, theirs) in enumerate(zip(cases, oracle)):
        mine = ours(case)
        outcome = "url" if theirs.get("url") else theirs.get("error", "none").split(":")[0]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        problem = compare(case, theirs, mine)
        if "glance:" in mine.get("refused", ""):
            problem = "our refusal shows the URL: %r" % mine["refused"]
        if problem:
            differences.append("case%03d: %s" % (number, problem))
    print("%d cases, real Glance: %s" % (len(cases), sorted(outcomes.items())))
    assert not differences, "%d of %d cases differ:\n%s" % (
        len(differences), len(cases), "\n".join(differences[:20]))
    # The generator must keep reaching every kind of outcome, or the test proves less.
    assert outcomes.get("url", 0) > len(cases) // 4, outcomes
    for kind, least in (("none", 20), ("NoSuchOptError", 5), ("NoSuchGroupError", 3), ("SystemExit", 5),
                        ("ConfigFileParseError", 5), ("ConfigFileValueError", 1)):
        assert outcomes.get(kind, 0) >= least, (kind, outcomes)


def test_real_glance_manage_opens_the_database_we_read(oracle_python, tmp_path):
    """The script above stands for glance-manage: check it on the real command, once."""
    glance_manage = str(Path(oracle_python).parent / "glance-manage")
    (tmp_path / "cache").mkdir()
    good = tmp_path / "good.conf"
    good.write_text("[DEFAULT]\nimage_cache_dir = %s\n[database]\n"
                    "connection = sqlite:///${image_cache_dir}/g$$x\\$y.sqlite\n" % (tmp_path / "cache"))
    bad = tmp_path / "bad.conf"
    bad.write_text("[database]\nconnection = sqlite:///$state_path/glance.sqlite\n")
    url = glance_conf.read([str(good)]).connection
    assert url == "sqlite:///%s/g$x$y.sqlite" % (tmp_path / "cache")
    done = subprocess.run([glance_manage, "--config-file", str(good), "db", "version"],
                          capture_output=True, text=True, cwd=str(tmp_path), check=False)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["g$x$y.sqlite"]
    done = subprocess.run([glance_manage, "--config-file", str(bad), "db", "version"],
                          capture_output=True, text=True, cwd=str(tmp_path), check=False)
    assert done.returncode != 0
    with pytest.raises(ConfigurationError, match=r"uses \$state_path, which is not one of Glance's options"):
        glance_conf.read([str(bad)])


def test_modules_use_the_url_glance_reads(make_database, tmp_path):
    """Through Ansible, on MariaDB: a password written with oslo.config's $$ escape
    logs in (configparser read it as $$), a later conf.d file wins, and what
    glance-manage fails on is refused naming it."""
    from galera import run_modules

    db = make_database("mysql")
    user, password = "gc_%s" % db.name[-8:], "pa$w0rd$"
    db._admin("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'" % (user, password))
    try:
        db._admin("GRANT ALL PRIVILEGES ON %s.* TO '%s'@'127.0.0.1'" % (db.name, user))
        main = tmp_path / "glance-api.conf"
        main.write_text("[DEFAULT]\nconnection = sqlite:////not-here\n[database]\nconnection = sqlite:////old\n")
        conf_d = tmp_path / "glance-api.conf.d"
        conf_d.mkdir()
        (conf_d / "10-database.conf").write_text(
            "[database]\nconnection = mysql+pymysql://%s:%s@127.0.0.1:3306/%s\n"
            % (user, password.replace("$", "$$"), db.name))
        state_path = tmp_path / "state-path.conf"
        state_path.write_text("[database]\nconnection = sqlite:///$state_path/glance.sqlite\n")
        default_only = tmp_path / "default-only.conf"
        default_only.write_text("[DEFAULT]\nconnection = sqlite:////x\n")
        sync, facts, refused, not_found = run_modules(tmp_path, [
            ("sync", {"config_file": [str(main)], "config_dir": str(conf_d)}),
            ("facts", {"config_file": [str(main)], "config_dir": str(conf_d)}),
            ("facts", {"config_file": [str(state_path)]}),
            ("facts", {"config_file": [str(default_only)]}),
        ])
    finally:
        db._admin("DROP USER IF EXISTS '%s'@'127.0.0.1'" % user)
    assert sync.get("failed") is not True and sync["changed"] is True, sync
    assert db.scalar("SELECT COUNT(*) FROM alembic_version") == len(sync["glance_db"]["revisions"]) > 0
    assert facts.get("failed") is not True and facts["glance_db"]["up_to_date"] is True, facts
    assert refused["failed"] is True and "uses $state_path, which is not one of Glance's options" in refused["msg"]
    assert not_found["failed"] is True and "Found [DEFAULT] connection in %s" % default_only in not_found["msg"]
