"""Every mistake an operator can make gets one clear msg, no traceback, no password,
and leaves the database untouched. Runs the real modules through ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
import yaml

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.lock import LOCK_NAME
from parity import schema_dump
from seed import seed_pre_ocata

HERE = Path(__file__).resolve().parent
# Characters that URL-encoding changes, so both forms can be looked for.
PASSWORD = "p@ss:w/rd%?&#" + uuid.uuid4().hex[:6]
WRONG_PASSWORD = "wr0ng@:/%#" + uuid.uuid4().hex[:6]
SECRET_FORMS = {form(p) for p in (PASSWORD, WRONG_PASSWORD)
                for form in (str, lambda s: quote(s, safe=""), quote_plus, quote)}
ENC = quote(PASSWORD, safe="")


def _mysql_user(db, name, grants):
    # The driver formats the statement with pyformat: a literal % is written %%.
    for host in ("%%", "localhost"):
        db._admin("CREATE USER '%s'@'%s' IDENTIFIED BY '%s'" % (name, host, PASSWORD.replace("%", "%%")))
        db._admin("GRANT %s ON %s.* TO '%s'@'%s'" % (grants, db.name, name, host))


@pytest.fixture
def scene(make_database, tmp_path):
    """The databases and files the cases need, and what must stay untouched."""
    made = {}
    made["synced"] = make_database("sqlite")
    phases.run(made["synced"].engine, "sync")
    made["newer"] = make_database("sqlite")
    phases.run(made["newer"].engine, "sync")
    made["newer"].execute("UPDATE alembic_version SET version_num = '2031_1_contract01'")
    made["unrelated"] = make_database("sqlite")
    made["unrelated"].execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    made["unrelated"].execute("INSERT INTO alembic_version VALUES ('3f2a9c1d0b7e')")
    made["foreign"] = make_database("sqlite")
    made["foreign"].execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    made["empty"] = make_database("mysql")
    made["mitaka"] = make_database("mysql")
    phases.run(made["mitaka"].engine, "sync", version="mitaka02")
    seed_pre_ocata(made["mitaka"])
    made["pending"] = make_database("mysql")
    phases.run(made["pending"].engine, "sync", version="mitaka02")
    seed_pre_ocata(made["pending"])
    phases.run(made["pending"].engine, "expand")
    made["postgres"] = make_database("postgresql")
    phases.run(made["postgres"].engine, "sync", version="mitaka02")
    made["readonly"] = make_database("mysql")
    made["locked"] = make_database("mysql")
    made["notrigger"] = make_database("mysql")
    phases.run(made["notrigger"].engine, "sync", version="mitaka02")
    users = {}
    for key, grants in (("readonly", "SELECT"),
                        ("notrigger", "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX"),
                        ("mitaka", "ALL")):
        users[key] = "gt_%s" % uuid.uuid4().hex[:10]
        _mysql_user(made[key], users[key], grants)
    files = {}
    files["no_connection"] = tmp_path / "no-connection.conf"
    files["no_connection"].write_text("[DEFAULT]\ndebug = true\n[database]\nmax_pool_size = 5\n")
    files["not_ini"] = tmp_path / "not-ini.conf"
    files["not_ini"].write_text("connection = mysql+pymysql://glance:%s@db/glance\n" % ENC)
    yield made, users, files
    for key, user in users.items():
        for host in ("%%", "localhost"):
            made[key]._admin("DROP USER IF EXISTS '%s'@'%s'" % (user, host))


def _mysql_url(db, user="root", password=None):
    secret = ":" + quote(password, safe="") if password else ""
    return "mysql+pymysql://%s%s@127.0.0.1:3306/%s" % (user, secret, db.name)


def _cases(made, users, files):
    """(name, module, args, environment, text the msg must hold)."""
    my = made["mitaka"]
    return [
        ("malformed URL", "sync", {"connection": "glance:%s@dbhost/glance" % ENC}, {}, "malformed"),
        ("password with an unencoded @", "sync", {"connection": "mysql+pymysql://glance:%s@127.0.0.1/glance" % PASSWORD},
         {}, "URL-encode the password"),
        ("unknown driver", "sync", {"connection": "oracle://glance:%s@127.0.0.1/glance" % ENC}, {},
         "Unsupported database"),
        ("unreachable host", "sync", {"connection": "mysql+pymysql://glance:%s@127.0.0.1:1/glance" % ENC},
         {}, "server at 127.0.0.1:1 is running"),
        ("wrong password", "sync", {"connection": _mysql_url(my, users["mitaka"], WRONG_PASSWORD)}, {},
         "check the user name and password"),
        ("missing database", "facts",
         {"connection": "postgresql+psycopg://postgres:%s@127.0.0.1:5432/glance_missing_%s"
          % (ENC, uuid.uuid4().hex[:8])}, {}, "check the database name"),
        ("unknown target revision", "sync", {"connection": made["synced"].url, "version": "ocata99"}, {},
         "Unknown revision 'ocata99'"),
        ("downgrade", "sync", {"connection": made["synced"].url, "version": "rocky_contract02"}, {},
         "does not support downgrades"),
        ("database newer than collection", "sync", {"connection": made["newer"].url}, {},
         "2031_1_contract01, which this collection does not know"),
        ("unrelated alembic_version", "expand", {"connection": made["unrelated"].url}, {},
         "3f2a9c1d0b7e, which this collection does not know"),
        ("non-Glance database", "sync", {"connection": made["foreign"].url}, {}, "not a Glance database"),
        ("empty database to migrate", "migrate", {"connection": _mysql_url(made["empty"])}, {},
         "Run glance_db_expand first"),
        ("empty database to contract", "contract", {"connection": _mysql_url(made["empty"])}, {},
         "Run glance_db_expand"),
        ("contract before expand", "contract", {"connection": _mysql_url(my, users["mitaka"], PASSWORD)}, {},
         "Contract cannot run before expand"),
        ("contract with pending data", "contract", {"connection": _mysql_url(made["pending"])}, {},
         "Run glance_db_migrate first"),
        ("online phase on PostgreSQL", "expand",
         {"connection": "postgresql+psycopg://postgres:%s@127.0.0.1:5432/%s" % (ENC, made["postgres"].name)},
         {}, "Upgrade offline with glance_db_sync"),
        ("missing PyMySQL", "facts", {"connection": _mysql_url(my, users["mitaka"], PASSWORD)},
         {"PYTHONPATH": str(HERE / "blockers" / "no_pymysql")}, "PyMySQL"),
        ("missing psycopg", "facts",
         {"connection": "postgresql://postgres:%s@127.0.0.1/%s" % (ENC, made["postgres"].name)},
         {"PYTHONPATH": str(HERE / "blockers" / "no_psycopg")}, "psycopg"),
        ("missing SQLAlchemy", "sync", {"connection": _mysql_url(my, users["mitaka"], PASSWORD)},
         {"PYTHONPATH": str(HERE / "blockers" / "no_sqlalchemy")}, "SQLAlchemy and Alembic"),
        ("config_file missing", "facts", {"config_file": "/nonexistent/glance-api.conf"}, {},
         "does not exist"),
        ("config_file unreadable as INI", "facts", {"config_file": str(files["not_ini"])}, {}, "Cannot read"),
        ("config_file without connection", "facts", {"config_file": str(files["no_connection"])}, {},
         "No [database] connection found"),
        ("read-only database user", "sync",
         {"connection": _mysql_url(made["readonly"], users["readonly"], PASSWORD)}, {},
         "may read but not change the schema"),
        ("expand without TRIGGER privilege", "expand",
         {"connection": _mysql_url(made["notrigger"], users["notrigger"], PASSWORD)}, {}, "GRANT TRIGGER"),
        ("lock held beyond lock_timeout", "sync",
         {"connection": _mysql_url(made["locked"]), "lock_timeout": 1}, {}, "held the Glance migration lock"),
        ("batch_size zero", "migrate", {"connection": _mysql_url(made["pending"]), "batch_size": 0}, {},
         "must be positive"),
        ("mysql_datadir that is not the server's", "expand",
         {"connection": _mysql_url(made["pending"]), "mysql_datadir": "/nonexistent/mysql"}, {},
         "SELECT @@datadir"),
        ("connection and config_file both", "facts",
         {"connection": _mysql_url(my, users["mitaka"], PASSWORD), "config_file": str(files["not_ini"])}, {},
         "mutually exclusive"),
        ("neither connection nor config_file", "facts", {}, {}, "one of the following is required"),
        ("backup to a missing directory", "backup",
         {"connection": _mysql_url(my, users["mitaka"], PASSWORD), "dest_dir": "/nonexistent/glance_backups"},
         {}, "does not exist. Create it"),
        ("backup with no dump tool", "backup",
         {"connection": _mysql_url(my, users["mitaka"], PASSWORD), "dest_dir": str(files["not_ini"].parent),
          "mysqldump": "/nonexistent/mysqldump"}, {}, "Cannot run /nonexistent/mysqldump"),
    ]


def test_every_bad_input_is_one_clear_msg_without_password(scene, tmp_path):
    made, users, files = scene
    cases = _cases(made, users, files)
    untouched = {key: schema_dump.dump(made[key].engine)
                 for key in ("synced", "newer", "foreign", "empty", "mitaka", "pending", "readonly", "locked",
                             "notrigger")}
    # Secrets come from variables, as in a real play (vault, inventory), not from
    # the task's text, which Ansible quotes when it reports a failure.
    secrets = {"case_%d" % i: args for i, (name, module, args, env, expect) in enumerate(cases)}
    (tmp_path / "secrets.yml").write_text(yaml.safe_dump(secrets))
    tasks = [{"name": name,
              "openstack_ops.glance.glance_db_%s" % module: {
                  key: "{{ case_%d.%s }}" % (i, key) for key in args},
              "environment": env, "register": "result_%d" % i, "ignore_errors": True}
             for i, (name, module, args, env, expect) in enumerate(cases)]
    tasks.append({"name": "Write every result", "ansible.builtin.copy": {
        "dest": str(tmp_path / "results.json"),
        "content": "{{ [%s] | to_json }}" % ", ".join("result_%d" % i for i in range(len(cases)))}})
    playbook = tmp_path / "bad_input.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))

    holder = sa.create_engine(_mysql_url(made["locked"]))  # another run, holding the lock
    with holder.connect() as lock_conn:
        assert lock_conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"),
                                 {"n": "%s.%s" % (LOCK_NAME, made["locked"].name)}).scalar() == 1
        log = tmp_path / "ansible.log"
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-v", "--diff",
             "-e", "@%s" % (tmp_path / "secrets.yml"), str(playbook)],
            capture_output=True, text=True, timeout=600, check=False,
            env=dict(os.environ, ANSIBLE_LOG_PATH=str(log), ANSIBLE_LOCALHOST_WARNING="false",
                     ANSIBLE_INVENTORY_UNPARSED_WARNING="false"))
    holder.dispose()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())

    for (name, module, args, env, expect), result in zip(cases, results):
        msg = result.get("msg", "")
        assert result.get("failed") is True, (name, result)
        assert expect in msg, (name, msg)
        assert "Traceback" not in msg and "\n" not in msg.strip(), (name, msg)
    everything = done.stdout + done.stderr + log.read_text() + json.dumps(results)
    leaked = [(form, everything[max(0, everything.index(form) - 300):everything.index(form) + 50])
              for form in SECRET_FORMS if form in everything]
    assert leaked == [], "password leaked in these forms: %s" % leaked
    for key, before in untouched.items():
        assert schema_dump.dump(made[key].engine) == before, "%s was changed" % key
    print("%d bad inputs refused, none leaked the password" % len(cases))


def _run_playbook(tmp_path, cases):
    """Run (name, module, args, keywords) cases as one playbook; their results, in order.
    Tasks with ``async`` run in the background while the others run."""
    (tmp_path / "cases.yml").write_text(yaml.safe_dump(
        {"case_%d" % i: args for i, (name, module, args, keywords) in enumerate(cases)}))
    tasks, waits = [], []
    for i, (name, module, args, keywords) in enumerate(cases):
        task = dict({"name": name, "openstack_ops.glance.glance_db_%s" % module: {
            key: "{{ case_%d.%s }}" % (i, key) for key in args}}, **keywords)
        if "async" in keywords:
            task.update(poll=0, register="job_%d" % i)
            tasks.insert(0, task)
            waits.append({"name": "wait: " + name, "ansible.builtin.async_status": {"jid": "{{ job_%d.ansible_job_id }}" % i},
                          "register": "result_%d" % i, "until": "result_%d.finished" % i, "retries": 60, "delay": 1,
                          "ignore_errors": True})
        else:
            tasks.append(dict(task, register="result_%d" % i, ignore_errors=True))
    tasks += waits
    tasks.append({"name": "Write every result", "diff": False, "ansible.builtin.copy": {
        "dest": str(tmp_path / "results.json"),
        "content": "{{ [%s] | to_json }}" % ", ".join("result_%d" % i for i in range(len(cases)))}})
    playbook = tmp_path / "cases_play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-e", "@%s" % (tmp_path / "cases.yml"),
         str(playbook)], capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                 ANSIBLE_ASYNC_DIR=str(tmp_path / "async")))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((tmp_path / "results.json").read_text())


def test_input_that_is_not_what_it_looks_like_is_refused(make_database, blackhole, tmp_path):
    """A SQLite file in a missing directory, a misspelt or absent driver, a missing
    MySQL database and a host that never answers: each one clear msg, on the driver-only
    read (facts) and through SQLAlchemy (sync, or facts with a query option)."""
    import importlib.util
    db = make_database("mysql")
    phases.run(db.engine, "sync")
    user = "gt_%s" % uuid.uuid4().hex[:10]
    _mysql_user(db, user, "ALL")
    missing_dir = tmp_path / ("absent-%s" % uuid.uuid4().hex[:6])
    sqlite_missing = "sqlite:///%s/glance.sqlite" % missing_dir
    absent_driver = importlib.util.find_spec("mysql") is None  # mysql-connector-python
    root = "mysql+pymysql://root@127.0.0.1:3306/"
    never = "mysql+pymysql://glance:%s@127.0.0.2:%d/glance" % (ENC, blackhole.port)
    sqlite_dir = "the directory %s does not exist" % missing_dir
    cases = [
        # (name, module, args, task keywords, msg must hold, msg must not hold)
        ("SQLite file in a missing directory, driver-only read", "facts", {"connection": sqlite_missing}, {},
         sqlite_dir, "next_step"),
        ("SQLite file in a missing directory, SQLAlchemy read", "facts",
         {"connection": sqlite_missing + "?timeout=5"}, {}, sqlite_dir, "next_step"),
        ("SQLite file in a missing directory, sync", "sync", {"connection": sqlite_missing}, {}, sqlite_dir, None),
        ("misspelt driver, facts", "facts", {"connection": "mysql+pymsql://root@127.0.0.1/" + db.name}, {},
         "driver 'pymsql' of mysql+pymsql:// is unknown", "PyMySQL is used"),
        ("misspelt driver, sync", "sync", {"connection": "mysql+pymsql://root@127.0.0.1/" + db.name}, {},
         "it runs the driver installed here: pymysql. Write mysql+pymysql://", None),
        ("missing MySQL database (1049), facts", "facts", {"connection": root + "glance_absent_x"}, {},
         "check the database name 'glance_absent_x'", "password"),
        ("missing MySQL database (1049), sync", "sync", {"connection": root + "glance_absent_x"}, {},
         "check the database name 'glance_absent_x'", "password"),
        ("database the user may not use (1044), facts", "facts",
         {"connection": _mysql_url(db, user, PASSWORD).replace(db.name, "glance_other_x")}, {},
         "GRANT ALL PRIVILEGES ON glance_other_x.*", "password"),
        ("database the user may not use (1044), migrate", "migrate",
         {"connection": _mysql_url(db, user, PASSWORD).replace(db.name, "glance_other_x")}, {},
         "GRANT ALL PRIVILEGES ON glance_other_x.*", "password"),
        ("host that never answers, facts", "facts", {"connection": never}, {"async": 60},
         "127.0.0.2:%d did not answer within 10 seconds" % blackhole.port, "see the database error above"),
        ("host that never answers, sync", "sync", {"connection": never}, {"async": 60},
         "127.0.0.2:%d did not answer within 10 seconds" % blackhole.port, "see the database error above"),
        ("PostgreSQL host that never answers, facts", "facts",
         {"connection": "postgresql+psycopg://postgres@127.0.0.2:%d/glance" % blackhole.port}, {"async": 60},
         "127.0.0.2:%d did not answer within 10 seconds" % blackhole.port, "see the database error above"),
    ]
    if absent_driver:
        cases.append(("absent driver, facts", "facts",
                      {"connection": "mysql+mysqlconnector://root@127.0.0.1/" + db.name}, {},
                      "driver 'mysqlconnector' of mysql+mysqlconnector:// is unknown or not one this collection runs",
                      None))
    accepted = [
        ("MySQLdb's name, replaced with a warning", "facts", {"connection": root.replace("+pymysql", "+mysqldb") + db.name},
         {}, "names the driver mysqldb (MySQLdb, oslo.db's default), which this host lacks: pymysql is used", None),
        ("no driver named: PyMySQL, no warning", "facts", {"connection": root.replace("+pymysql", "") + db.name},
         {}, None, None),
    ]
    results = _run_playbook(tmp_path, [case[:4] for case in cases + accepted])
    for (name, module, args, keywords, expect, never_says), result in zip(cases, results):
        msg = result.get("msg", "")
        assert result.get("failed") is True, (name, result)
        assert expect in msg, (name, msg)
        assert never_says is None or never_says not in msg, (name, msg)
        assert "Traceback" not in msg and "\n" not in msg.strip(), (name, msg)
    for (name, module, args, keywords, expect, never_says), result in zip(accepted, results[len(cases):]):
        assert not result.get("failed") and result["glance_db"]["up_to_date"], (name, result)
        warnings = result.get("warnings", [])
        assert (expect is None and not warnings) or any(expect in w for w in warnings), (name, warnings)
    assert not missing_dir.exists(), "reading created the SQLite directory"
    for host in ("%%", "localhost"):
        db._admin("DROP USER IF EXISTS '%s'@'%s'" % (user, host))
