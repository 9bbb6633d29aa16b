"""Database errors have one home (db_errors.py): the code of an exception, the named
codes, one backoff and each caller's policy. The old scattered names stay gone, and
no other file under plugins/ defines an error code or a retry constant again."""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import db_errors

PACKAGE = "ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db"
PLUGINS = pathlib.Path(__file__).resolve().parents[5] / "plugins"
HOME = PLUGINS / "module_utils" / "glance_db" / "db_errors.py"


def _python_files():
    return sorted(p for p in PLUGINS.rglob("*.py") if "__pycache__" not in p.parts)


def _module_assignments(path):
    """{name: value node} of the module-level assignments of ``path``."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
    return found


def _literals(path):
    """Every int and str constant of ``path`` that is not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body \
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            docstrings.add(id(node.body[0].value))
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and id(node) not in docstrings
            and isinstance(node.value, (int, str)) and not isinstance(node.value, bool)]


def _codes():
    """{name: value} of the error codes db_errors names (its upper-case int and SQLSTATE constants)."""
    return dict((name, getattr(db_errors, name)) for name, value in _module_assignments(HOME).items()
                if name.isupper() and isinstance(value, ast.Constant)
                and (isinstance(value.value, int) and value.value >= 1000 or name.startswith(("PG_", "SQLITE_"))))


@pytest.mark.parametrize("module, name", [
    ("lock", "_code"),
    ("state", "DEADLOCK"), ("state", "READ_RETRIES"), ("state", "_DriverQueries"), ("state", "_NeedsSqlAlchemy"),
    ("state", "on_driver_connection"),
    ("purge", "RETRIES"), ("purge", "_MYSQL_RETRY"), ("purge", "_PG_RETRY"), ("purge", "_is_lock_wait"),
    ("online/copier", "DEADLOCK"), ("online/copier", "error_code"), ("online/copier", "NO_SUCH_TABLE"),
    ("online/cut_over", "NO_SUCH_TRIGGER"), ("online/cut_over", "error_code"),
    ("online/alembic_hook", "DEADLOCK"), ("online/alembic_hook", "LOCK_WAIT_TIMEOUT"),
    ("online/alembic_hook", "error_code"),
    ("runner", "DEADLOCK"),
    ("connection", "describe_db_error"), ("connection", "check_connection"), ("connection", "choose_driver"),
    ("connection", "MissingDriver"), ("connection", "parse_plain_url"), ("connection", "connect_direct"),
    ("connection", "password_of"), ("connection", "raw_url"), ("connection", "read_config_files"),
    ("connection", "_PLAIN_URL"), ("deps", "DRIVERS"),
    ("metadefs", "on_driver_connection"), ("metadefs", "tables"), ("metadefs", "_write_file"),
])
def test_the_old_scattered_names_are_gone(module, name):
    path = PLUGINS / "module_utils" / "glance_db" / (module + ".py")
    tree = ast.parse(path.read_text())
    defined = set(_module_assignments(path)) | set(
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef)))
    assert name not in defined, "%s.%s is back: db_errors, drivers or direct holds it" % (module, name)


def test_retry_py_is_gone():
    assert not (PLUGINS / "module_utils" / "glance_db" / "retry.py").exists()
    with pytest.raises(ImportError):
        importlib.import_module(PACKAGE + ".retry")


def test_each_error_code_is_written_once_in_python():
    codes = _codes()
    assert {"DEADLOCK", "LOCK_WAIT_TIMEOUT", "PG_DEADLOCK", "SQLITE_LOCKED"} <= set(codes)
    assert len(set(codes.values())) == len(codes), "two names for one code"
    for path in _python_files():
        if path == HOME:
            assert sorted(_literals(path).count(value) for value in codes.values()) == [1] * len(codes)
            continue
        again = sorted(set(_literals(path)) & set(codes.values()), key=str)
        assert again == [], "%s writes %s again: import the name from db_errors" % (path, again)


def test_each_retry_constant_and_policy_is_defined_once():
    words = ("RETRIES", "RETRY", "BACKOFF", "DEADLOCK", "LOCK_WAIT_TIMEOUT")
    for path in _python_files():
        names = [name for name in _module_assignments(path) if any(word in name for word in words)]
        if path != HOME:
            assert names == [], "%s defines %s: db_errors holds them" % (path, names)
        text = path.read_text()
        if path != HOME:
            assert "Backoff(" not in text and "def with_backoff" not in text and "def code_of" not in text


def test_the_policies_keep_their_values():
    def pauses(policy):
        return [round(policy.pause(n), 6) for n in range(1, policy.retries + 1)]

    assert db_errors.RETRIES == 6 and db_errors.FIRST_BACKOFF_SECONDS == 0.5
    for policy in (db_errors.BATCH, db_errors.DDL):
        assert policy.tries == 7 and pauses(policy) == [0.5, 1, 2, 4, 8, 16]
    for policy in (db_errors.BATCH, db_errors.DDL):
        assert set(policy.mysql) == {db_errors.DEADLOCK, db_errors.LOCK_WAIT_TIMEOUT}
    assert db_errors.BATCH_ROW_LOCK_WAIT_SECONDS == 5
    assert db_errors.STATE_READ.tries == 9 and pauses(db_errors.STATE_READ) == [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6]
    assert db_errors.STATE_READ.mysql == (db_errors.DEADLOCK,)
    purge = db_errors.PURGE_BATCH
    assert purge.tries == 6 and pauses(purge) == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert set(purge.mysql) == {db_errors.DEADLOCK, db_errors.LOCK_WAIT_TIMEOUT}
    assert set(purge.postgresql) == {"55P03", "40P01"} and purge.sqlite == ("database is locked",)


class _DriverError(Exception):
    """A driver's exception as PyMySQL raises it: (number, text)."""


class _PgError(Exception):
    def __init__(self, text, sqlstate):
        super(_PgError, self).__init__(text)
        self.sqlstate = sqlstate


def _operational(original):
    return sa.exc.OperationalError("UPDATE images SET name = 'x'", None, original)


def test_code_of_reads_wrapped_and_bare_driver_errors():
    assert db_errors.code_of(_operational(_DriverError(1213, "Deadlock found"))) == db_errors.DEADLOCK
    assert db_errors.code_of(_DriverError(2013, "Lost connection")) == db_errors.SERVER_LOST
    assert db_errors.code_of(_operational(_PgError("deadlock detected", "40P01"))) is None
    assert db_errors.code_of(_operational(_DriverError())) is None
    assert db_errors.code_of(ValueError("no database here")) is None


def test_with_backoff_tries_again_with_the_policys_pauses_then_gives_up():
    slept, calls = [], []

    def deadlocked():
        calls.append(1)
        raise _operational(_DriverError(db_errors.DEADLOCK, "Deadlock found"))

    with pytest.raises(sa.exc.OperationalError):
        db_errors.with_backoff(deadlocked, db_errors.BATCH, slept.append)
    assert len(calls) == 7 and slept == [0.5, 1, 2, 4, 8, 16]

    answers = iter([_operational(_DriverError(db_errors.LOCK_WAIT_TIMEOUT, "Lock wait timeout")), "done"])

    def second_time_lucky():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    retried = []
    slept = []
    assert db_errors.with_backoff(second_time_lucky, db_errors.DDL, slept.append,
                                  on_retry=lambda exc, attempt, tries: retried.append((db_errors.code_of(exc), attempt,
                                                                                       tries))) == "done"
    assert slept == [0.5] and retried == [(db_errors.LOCK_WAIT_TIMEOUT, 2, 7)]


def test_an_error_the_policy_does_not_name_is_raised_at_once():
    slept = []
    lock_wait = _operational(_DriverError(db_errors.LOCK_WAIT_TIMEOUT, "Lock wait timeout"))

    def waits():
        raise lock_wait

    with pytest.raises(sa.exc.OperationalError) as raised:
        db_errors.with_backoff(waits, db_errors.STATE_READ, slept.append)
    assert raised.value is lock_wait and slept == []


@pytest.mark.parametrize("original, retried", [
    (_DriverError(1205, "Lock wait timeout exceeded"), True),
    (_DriverError(1213, "Deadlock found"), True),
    (_DriverError(1062, "Duplicate entry"), False),
    (_PgError("canceling statement due to lock timeout", "55P03"), True),
    (_PgError("deadlock detected", "40P01"), True),
    (_PgError("relation does not exist", "42P01"), False),
    (_DriverError("database is locked"), True),
    (_DriverError("no such table: images"), False),
])
def test_purge_retries_lock_waits_on_every_engine(original, retried):
    assert db_errors.PURGE_BATCH.retries_on(_operational(original)) is retried
