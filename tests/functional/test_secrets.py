"""No fragment of a password, ever: generated passwords on every failure path.

Each run draws passwords at random (seeded; the seed is printed on failure and
GLANCE_SECRET_SEED replays it) holding ``@ : / % # ? & + ; =``, a space and
non-ASCII letters. Two ansible-playbook runs do the same cases, one host per
password: a subject run and a control run with other passwords. Everything a
run shows (stdout, stderr, the ANSIBLE_LOG_PATH log, the registered results with
their diff and warnings) is searched for each password and every substring of
three or more characters of it, as written and URL-encoded. A fragment counts
only when the control run does not show it too ("127", "sql" show anyway).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
import yaml

from conftest import server_admin_url

SPECIALS = "@:/%#?&+;="
NON_ASCII = "éüßøñЖжλΩ漢字€"
LETTERS = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
HOSTS = ("h1", "h2")  # one password each, in each run
# The role's main entry point: name -> (the module case whose connection it takes, check mode).
ROLE_CASES = {"role, wrong password MariaDB": ("wrong password MariaDB, sync", False),
              "role, check mode MariaDB": ("read MariaDB, facts", True)}


def make_password(rng):
    """Every special character, a space inside, two non-ASCII letters, and letters."""
    chars = list(SPECIALS) + rng.choices(NON_ASCII, k=2) + \
        rng.choices(LETTERS, k=rng.randint(4, 8))
    rng.shuffle(chars)
    chars.insert(rng.randint(1, len(chars) - 1), " ")  # never at an end: INI strips those
    return rng.choice(LETTERS) + "".join(chars) + rng.choice(LETTERS)


def secret_forms(password):
    return {password, quote(password, safe=""), quote_plus(password), quote(password)}


def fragments(password):
    """Every substring of 3 or more characters of each form of the password."""
    found = set()
    for form in secret_forms(password):
        found |= {form[i:j] for i in range(len(form)) for j in range(i + 3, len(form) + 1)}
    return found


def _admin(engine_name, statement, **params):
    admin = sa.create_engine(server_admin_url(engine_name), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        admin.dispose()


def _mysql_user(name, password, database):
    for host in ("%", "localhost"):
        _admin("mysql", "CREATE USER :name@:host IDENTIFIED BY :password", name=name, host=host,
               password=password)
        if database:
            _admin("mysql", "GRANT ALL PRIVILEGES ON %s.* TO :name@:host" % database, name=name, host=host)


def _conf(path, url):
    path.write_text("[DEFAULT]\ndebug = false\n\n[database]\nconnection = %s\n" % url, encoding="utf-8")
    return str(path)


def _cases(password, host, my_db, pg_db, tag, blackhole, confs):
    """name -> (module, args, task keywords): every failure path, and the success
    paths whose results (facts, plan, diff) must not show the password either; the slow
    ones; and glance_db_wait's: name -> (module started with async, its args, the wait's args)."""
    enc = quote(password, safe="")
    user = "gsec_%s_%s" % (tag, host)
    missing = "glance_missing_%s" % tag

    def my(database):
        return "mysql+pymysql://%s:%s@127.0.0.1:3306/%s" % (user, enc, database)

    def pg(database):
        return "postgresql+psycopg://postgres:%s@127.0.0.1:5432/%s" % (enc, database)

    wrong = "mysql+pymysql://gsec_%s_wrong:%s@127.0.0.1:3306/%s" % (tag, enc, my_db)
    raw = "mysql+pymysql://%s:%s@127.0.0.1:3306/%s" % (user, password, my_db)
    never = "mysql+pymysql://%s:%s@127.0.0.2:%d/glance" % (user, enc, blackhole.port)
    refused = "mysql+pymysql://%s:%s@127.0.0.1:1/glance" % (user, enc)
    conf_dir = confs / host
    conf_dir.mkdir()
    (conf_dir / "b3").mkdir()  # the good backup's; the others fail before they need one
    check = {"check_mode": True}
    cases = {
        "refused port, facts": ("facts", {"connection": refused}, {}),
        "refused port, sync": ("sync", {"connection": refused}, {}),
        "wrong password MariaDB, facts": ("facts", {"connection": wrong}, {}),
        "wrong password MariaDB, sync": ("sync", {"connection": wrong}, {}),
        "missing database MariaDB, facts": ("facts", {"connection": my(missing)}, {}),
        "missing database MariaDB, migrate": ("migrate", {"connection": my(missing)}, {}),
        "missing database PostgreSQL, facts": ("facts", {"connection": pg(missing)}, {}),
        "missing database PostgreSQL, sync": ("sync", {"connection": pg(missing)}, {}),
        "online phase on PostgreSQL, expand": ("expand", {"connection": pg(pg_db)}, {}),
        "missing database MariaDB, contract": ("contract", {"connection": my(missing)}, {}),
        "wrong password MariaDB, purge": ("purge", {"connection": wrong}, {}),
        "missing database PostgreSQL, purge": ("purge", {"connection": pg(missing)}, {}),
        "wrong password MariaDB, metadefs": ("metadefs", {"connection": wrong, "state": "absent"}, {}),
        "config_file missing database, metadefs":
            ("metadefs", {"config_file": _conf(conf_dir / "missing2.conf", my(missing)), "state": "absent"}, {}),
        "unencoded password, facts": ("facts", {"connection": raw}, {}),
        "no database MariaDB, facts": ("facts", {"connection": my("")}, {}),
        "no database PostgreSQL, purge": ("purge", {"connection": pg("")}, {}),
        "config_file no database, sync": ("sync", {"config_file": _conf(conf_dir / "nodb.conf", my(""))}, {}),
        "misspelt driver, facts": ("facts", {"connection": wrong.replace("+pymysql", "+pymsql")}, {}),
        "absent driver, facts": ("facts", {"connection": wrong.replace("+pymysql", "+mysqlconnector")}, {}),
        "unknown database, facts": ("facts", {"connection": wrong.replace("mysql+pymysql", "oracle")}, {}),
        "no scheme, facts": ("facts", {"connection": wrong.split("://", 1)[1]}, {}),
        "read MariaDB, facts": ("facts", {"connection": my(my_db)}, {}),
        "check mode MariaDB, sync": ("sync", {"connection": my(my_db)}, check),
        "check mode PostgreSQL, sync": ("sync", {"connection": pg(pg_db)}, check),
        "config_file wrong password, facts": ("facts", {"config_file": _conf(conf_dir / "wrong.conf", wrong)}, {}),
        "config_file wrong password, sync": ("sync", {"config_file": _conf(conf_dir / "wrong2.conf", wrong)}, {}),
        "config_file unencoded password, facts": ("facts", {"config_file": _conf(conf_dir / "raw.conf", raw)}, {}),
        "config_file missing database, facts":
            ("facts", {"config_file": _conf(conf_dir / "missing.conf", my(missing))}, {}),
        "config_file check mode, sync": ("sync", {"config_file": _conf(conf_dir / "good.conf", my(my_db))}, check),
        "wrong password MariaDB, backup": ("backup", {"connection": wrong, "dest_dir": str(conf_dir / "b1")}, {}),
        "missing database PostgreSQL, backup":
            ("backup", {"connection": pg(missing), "dest_dir": str(conf_dir / "b2")}, {}),
        "good password MariaDB, backup": ("backup", {"connection": my(my_db), "dest_dir": str(conf_dir / "b3")}, {}),
        # After the backup above: its dump is the newest of b3 (my_db is empty, so restoring it changes nothing
        # another case reads).
        "wrong password MariaDB, restore": ("restore", {"connection": wrong, "backup_dir": str(conf_dir / "b3")}, {}),
        "missing database PostgreSQL, restore":
            ("restore", {"connection": pg(missing), "backup_dir": str(conf_dir / "b3")}, {}),
        "missing dump MariaDB, restore": ("restore", {"connection": my(my_db), "path": str(conf_dir / "nodump.sql")}, {}),
        "check mode MariaDB, restore":
            ("restore", {"connection": my(my_db), "backup_dir": str(conf_dir / "b3"), "force": True}, check),
        "good password MariaDB, restore":
            ("restore", {"connection": my(my_db), "backup_dir": str(conf_dir / "b3"), "force": True}, {}),
    }
    slow = {
        "never answers, facts": ("facts", {"connection": never}, {}),
        "never answers, sync": ("sync", {"connection": never}, {}),
    }
    # glance_db_wait polls the facts with its URL, printing a line per poll, then gives the job's result.
    # A job on a server that never answers lasts CONNECT_TIMEOUT: the polls that fail print their msg.
    waits = {
        "good password MariaDB, wait": ("facts", {"connection": my(my_db)}, {"connection": my(my_db)}),
        "wrong password MariaDB, wait": ("facts", {"connection": never}, {"connection": wrong}),
        "config_file wrong password, wait": (
            "sync", {"connection": never}, {"config_file": [_conf(conf_dir / "wrong3.conf", wrong)]}),
    }
    return cases, slow, waits


def _tasks(cases, slow, waits, out_dir):
    """Every case as a task on every host, its options from the host's variables;
    the slow ones run at once, in the background, while the others run; each wait
    case's job is started with async, then waited for by glance_db_wait."""
    def call(key, module, args, keywords):
        task = {"openstack_ops.glance.glance_db_%s" % module:
                dict((option, "{{ cases['%s'].%s }}" % (key, option)) for option in args)}
        task.update(keywords)
        return task

    tasks = []
    for i, (name, (module, args, keywords)) in enumerate(slow.items()):
        tasks.append(dict(call("slow%d" % i, module, args, keywords), name="start: " + name,
                          register="job_%d" % i, **{"async": 60, "poll": 0}))
    for i, (name, (module, args, keywords)) in enumerate(cases.items()):
        tasks.append(dict(call("case%d" % i, module, args, keywords), name=name,
                          register="case_%d" % i, ignore_errors=True))
    # The role too: its own messages and summaries print what the modules return.
    # A rescue stops the role at its first failure, as a play without it would stop.
    for i, (name, (case, check_mode)) in enumerate(ROLE_CASES.items()):
        tasks.append({"name": name, "block": [
            {"name": name, "ansible.builtin.include_role": {
                "name": "openstack_ops.glance.glance_db", "apply": {"check_mode": check_mode}},
             "vars": {"glance_db_connection": "{{ cases['case%d'].connection }}" % list(cases).index(case)}},
            {"name": "role %d ended" % i, "ansible.builtin.set_fact": {"role_%d" % i: {"failed": False}}}],
            "rescue": [{"name": "role %d failed" % i, "ansible.builtin.set_fact": {"role_%d" % i: {
                "failed": True, "msg": "{{ (ansible_failed_result | default({'msg': '(run_once: failed on another host)'})).msg }}"}}}]})
    for i, (name, (module, args, wait_args)) in enumerate(waits.items()):
        tasks.append({"name": "start: " + name, "register": "waitjob_%d" % i, "async": 60, "poll": 0,
                      "openstack_ops.glance.glance_db_%s" % module: dict(
                          (option, "{{ waits['wait%d'].job.%s }}" % (i, option)) for option in args)})
        wait = dict((option, "{{ waits['wait%d'].wait.%s }}" % (i, option)) for option in wait_args)
        wait.update(jid="{{ waitjob_%d.ansible_job_id }}" % i, poll=0.5)
        tasks.append({"name": name, "register": "wait_%d" % i, "ignore_errors": True,
                      "openstack_ops.glance.glance_db_wait": wait})
    for i, name in enumerate(slow):
        tasks.append({"name": "wait: " + name, "register": "slow_%d" % i,
                      "ansible.builtin.async_status": {"jid": "{{ job_%d.ansible_job_id }}" % i},
                      "until": "slow_%d.finished" % i, "retries": 60, "delay": 1, "ignore_errors": True})
    results = ["case_%d" % i for i in range(len(cases))] + ["slow_%d" % i for i in range(len(slow))] + \
        ["role_%d" % i for i in range(len(ROLE_CASES))] + ["wait_%d" % i for i in range(len(waits))]
    tasks.append({"name": "Write every result", "diff": False, "ansible.builtin.copy": {
        "dest": str(out_dir / "{{ inventory_hostname }}.json"),
        "content": "{{ [%s] | to_json }}" % ", ".join(results)}})
    return tasks


def _run(label, passwords, tmp_path, my_db, pg_db, blackhole):
    """Start one ansible-playbook run of every case, one host per password."""
    root = tmp_path / label
    root.mkdir()
    tag = uuid.uuid4().hex[:8]
    hosts = {}
    users = ["gsec_%s_wrong" % tag]
    _mysql_user(users[0], "not-" + uuid.uuid4().hex, None)
    for host, password in zip(HOSTS, passwords):
        cases, slow, waits = _cases(password, host, my_db, pg_db, tag, blackhole, root)
        users.append("gsec_%s_%s" % (tag, host))
        _mysql_user(users[-1], password, my_db)
        variables = dict(("case%d" % i, args) for i, (module, args, keywords) in enumerate(cases.values()))
        variables.update(("slow%d" % i, args) for i, (module, args, keywords) in enumerate(slow.values()))
        hosts[host] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                       "cases": variables,
                       "waits": dict(("wait%d" % i, {"job": job, "wait": wait})
                                     for i, (module, job, wait) in enumerate(waits.values()))}
    (root / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}, allow_unicode=True),
                                        encoding="utf-8")
    play = [{"hosts": "all", "gather_facts": False, "tasks": _tasks(cases, slow, waits, root)}]
    (root / "play.yml").write_text(yaml.safe_dump(play))
    log = root / "ansible.log"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-v", "--diff", "-f", "4",
         "-i", str(root / "inventory.yml"), str(root / "play.yml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, ANSIBLE_LOG_PATH=str(log), ANSIBLE_LOCALHOST_WARNING="false",
                 ANSIBLE_ASYNC_DIR=str(root / "async")))
    return dict(root=root, log=log, process=process, users=users, tag=tag,
                names=list(cases) + list(slow) + list(ROLE_CASES) + list(waits))


def _finish(run):
    out, err = run["process"].communicate(timeout=300)
    run["stdout"], run["stderr"] = out, err
    files = dict((host, run["root"] / ("%s.json" % host)) for host in HOSTS)
    run["results"] = dict((host, json.loads(path.read_text(encoding="utf-8")) if path.exists() else [])
                          for host, path in files.items())
    return run


def _normalized(run, text):
    """The run's text with what differs between two identical runs anyway taken out:
    its directory, user and database names, log time stamps, job ids, Ansible's temporary
    directories, file sizes and checksums."""
    text = text.replace(str(run["root"]), "<dir>").replace(run["tag"], "<tag>")
    text = re.sub(r"glance_t_[0-9a-f]{12}", "<db>", text)
    text = re.sub(r"^\d{4}-\d\d-\d\d [\d:,]+ p=\d+ [^|]*\|", "<log>|", text, flags=re.M)
    text = re.sub(r"j\d+\.\d+", "<job>", text)
    text = re.sub(r"\b[0-9a-f]{32,64}\b", "<checksum>", text)  # md5, sha1, sha256 of files
    text = re.sub(r"ansible-tmp-[\d.]+-\d+-\d+", "<ansible-tmp>", text)
    text = re.sub(r'"size": \d+', '"size": <size>', text)  # files whose length follows the password's
    text = re.sub(r"\b\d{8}T\d{6}Z\b", "<time>", text)  # a backup file's time stamp
    return re.sub(r"\b\d+\.\d+\b", "<number>", text)  # timings


def _texts(run):
    """Where a secret could show: every stream, the log, and each host's results."""
    texts = {"stdout": run["stdout"], "stderr": run["stderr"], "log": run["log"].read_text(encoding="utf-8")}
    for host in HOSTS:
        for name, result in zip(run["names"], run["results"][host]):
            texts["%s result: %s" % (host, name)] = json.dumps(result, ensure_ascii=False)
            texts["%s result (ascii): %s" % (host, name)] = json.dumps(result)
    return dict((where, _normalized(run, text)) for where, text in texts.items())


@pytest.fixture
def databases(make_database):
    my_db = make_database("mysql")
    pg_db = make_database("postgresql")
    yield my_db.name, pg_db.name


def test_no_fragment_of_a_generated_password_shows(databases, blackhole, tmp_path):
    seed = int(os.environ.get("GLANCE_SECRET_SEED") or random.SystemRandom().randrange(2 ** 32))
    rng = random.Random(seed)
    subject = [make_password(rng) for host in HOSTS]
    control = [make_password(rng) for host in HOSTS]
    my_db, pg_db = databases
    started = time.monotonic()
    runs = []
    try:
        runs.append(_run("subject", subject, tmp_path, my_db, pg_db, blackhole))
        runs.append(_run("control", control, tmp_path, my_db, pg_db, blackhole))
        runs = [_finish(run) for run in runs]
    finally:
        for run in runs:
            run["process"].kill()
            for user in run["users"]:
                for host in ("%", "localhost"):
                    _admin("mysql", "DROP USER IF EXISTS :name@:host", name=user, host=host)
    elapsed = time.monotonic() - started
    replay = "seed %d (GLANCE_SECRET_SEED=%d replays it), passwords %r" % (seed, seed, subject + control)
    for run in runs:
        assert run["process"].returncode == 0, (replay, run["stdout"][-3000:], run["stderr"][-3000:])
        # glance_db_wait printed its polls of the facts (a check of lines never printed would prove nothing)
        assert "] progress unknown: Cannot use the database at mysql://gsec_" in run["stdout"], \
            run["stdout"][-3000:]

    texts = [_texts(run) for run in runs]
    leaks = []
    for me, other, passwords in ((0, 1, subject), (1, 0, control)):
        seen_anyway = "\n".join(texts[other].values())
        for password in passwords:
            for where, text in texts[me].items():
                for form in secret_forms(password):
                    if form in text:
                        leaks.append((password, where, "whole password", form))
                for piece in fragments(password):
                    if piece in text and piece not in seen_anyway:
                        at = text.index(piece)
                        leaks.append((password, where, piece, text[max(0, at - 80):at + 40]))
    # Every case ends as meant: a leak check of runs that did nothing would prove nothing.
    wrong = []
    for run in runs:
        for host in HOSTS:
            for name, result in zip(run["names"], run["results"][host]):
                succeeds = "check mode" in name or name.startswith(("read ", "good "))
                if bool(result.get("failed")) == succeeds or (
                        not succeeds and (not result.get("msg") or "Traceback" in result["msg"])):
                    wrong.append((name, result.get("msg")))
    paths = len(runs[0]["names"])
    tried = len(subject + control) * paths
    print("passwords x paths tried: %d x %d = %d, fragments found: %d, %.0f s (%s)"
          % (len(subject + control), paths, tried, len(leaks), elapsed, replay))
    assert leaks == [] and wrong == [], "%s\nleaks:\n%s\nnot ended as meant:\n%s" % (
        replay, "\n".join(repr(leak) for leak in leaks[:30]), "\n".join(repr(case) for case in wrong))
