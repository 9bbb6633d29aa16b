"""Run one phase, or one module, in its own process, optionally killed part-way.

    python run_phase.py URL PHASE [JSON_ARGS] [START_AT] [KILL]
        phases.run in this process; prints {"changed": ..., "error": ...} as JSON.
    python run_phase.py module NAME JSON_ARGS [KILL]
        the module glance_db_NAME as Ansible runs it (its main(), its AnsibleModule
        reading JSON_ARGS), printing the module's JSON result.

Used to race several runs at once and to kill a run part-way. KILL is
[SIGNAL-]POINT, where POINT is one of

    before-write:N              just before the run's N-th writing statement
    after-commit:N              just after its N-th commit
    before-statement:REGEX[:N]  just before the N-th statement (default 1) that
                                REGEX finds (re.search, case-insensitive)
    after-statement:REGEX[:N]   just after it executed (on MySQL a DDL statement has
                                committed by then; DML has not)

and SIGNAL is "kill" (SIGKILL, the default), "term" (SIGTERM), "int" (SIGINT) or
"stop" (SIGSTOP: frozen mid-phase, whatever the machine's speed), which the run
sends itself there. REGEX may hold colons when N is given.

GLANCE_TEST_COPY_MIN_ROWS, when set, is the shadow copy's threshold in this
process (online.MIN_ROWS, 10,000 in the product): tests with fewer rows
can reach the copy. GLANCE_TEST_KILL_MARK, when set, is a file written just before
the signal is sent: the caller knows the point was reached.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".build" / "collections"))

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (  # noqa: E402
    connection, online, phases,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.online import copier  # noqa: E402
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import (  # noqa: E402
    GlanceDbError,
)


WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|CREATE|ALTER|DROP)\b", re.IGNORECASE)
SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT, "stop": signal.SIGSTOP}
MIN_ROWS_ENV = "GLANCE_TEST_COPY_MIN_ROWS"
MARK_ENV = "GLANCE_TEST_KILL_MARK"


LEADING_COMMENT = re.compile(r"^\s*/\*.*?\*/\s*", re.DOTALL)


def parse_kill(kill):
    """KILL (see the module's doc) -> (signal, point, pattern or None, count)."""
    sig = signal.SIGKILL
    head, _dash, rest = kill.partition("-")
    if head in SIGNALS:
        sig, kill = SIGNALS[head], rest
    when, _colon, arg = kill.partition(":")
    if when in ("before-write", "after-commit"):
        return sig, when, None, int(arg)
    if when not in ("before-statement", "after-statement"):
        raise ValueError("unknown kill point %r" % kill)
    count = 1
    found = re.match(r"^(.*):(\d+)$", arg, re.DOTALL)
    if found:
        arg, count = found.group(1), int(found.group(2))
    return sig, when, re.compile(arg, re.IGNORECASE), count


def arm_kill(target, kill):
    """Send this process the kill's signal at its point. ``target`` is an engine, or
    sqlalchemy's Engine class for every engine the run makes (a module makes its own)."""
    sig, when, pattern, count = parse_kill(kill)
    seen = {"n": 0}

    def maybe_die():
        seen["n"] += 1
        if seen["n"] == count:
            mark = os.environ.get(MARK_ENV)
            if mark:  # the caller learns the point was reached, whatever the signal does
                Path(mark).write_text(str(sig))
            os.kill(os.getpid(), sig)

    if when == "after-commit":
        @connection.sa.event.listens_for(target, "commit")
        def after(conn):
            maybe_die()
        return
    event = "before_cursor_execute" if when.startswith("before-") else "after_cursor_execute"

    @connection.sa.event.listens_for(target, event)
    def at_statement(conn, cursor, statement, parameters, context, executemany):
        statement = LEADING_COMMENT.sub("", statement)  # on Galera, the lease's tag (lock.STATEMENT_TAG)
        if (WRITE.match(statement) if pattern is None else pattern.search(statement)):
            maybe_die()


def set_copy_threshold(min_rows=None):
    """Let a shadow copy start at ``min_rows`` rows (default: GLANCE_TEST_COPY_MIN_ROWS,
    if set) in this process. TableCopy binds MIN_ROWS as a default argument when its
    module loads, so every new TableCopy gets it set after construction too."""
    if min_rows is None:
        min_rows = os.environ.get(MIN_ROWS_ENV)
    if min_rows in (None, ""):
        return
    min_rows = int(min_rows)
    online.MIN_ROWS = min_rows
    init = copier.TableCopy.__init__
    if getattr(init, "_kill_points_threshold", None) is not None:
        init = init._kill_points_original

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.min_rows = min_rows
    __init__._kill_points_threshold = min_rows
    __init__._kill_points_original = init
    copier.TableCopy.__init__ = __init__


def main(url, phase, args="{}", start_at=None, kill=None):
    set_copy_threshold()
    redactor = connection.Redactor()
    engine = connection.create_engine(connection.resolve_url(url, redactor=redactor))
    if kill:
        arm_kill(engine, kill)
    if start_at:
        time.sleep(max(0.0, float(start_at) - time.time()))
    try:
        outcome = phases.run(engine, phase, **json.loads(args))
        print(json.dumps({"changed": outcome.changed, "revisions": outcome.applied_revisions,
                          "migrated": outcome.migrated, "error": None}))
    except GlanceDbError as exc:
        print(json.dumps({"changed": False, "error": redactor(str(exc))}))


def run_module(name, args, kill=None):
    """Run plugins/modules/glance_db_NAME.py as Ansible does, here: its main() reads
    ``args`` (JSON, the module's options) and prints its result; exits as it does."""
    set_copy_threshold()
    if kill:
        arm_kill(connection.sa.engine.Engine, kill)
    path = REPO / "plugins" / "modules" / ("glance_db_%s.py" % name)
    sys.argv = [str(path), json.dumps({"ANSIBLE_MODULE_ARGS": json.loads(args)})]
    runpy.run_path(str(path), run_name="__main__")


def run_module_forked(name, args, env=None):
    """run_module(NAME, ARGS) in a child forked from this process, which has the modules'
    libraries loaded already (a new interpreter takes half a second more), ``env`` added to
    the child's environment alone; (its wait status, everything it printed)."""
    with tempfile.TemporaryFile() as out:
        pid = os.fork()
        if pid == 0:  # the child: its output to the file; os._exit skips the parent's finalizers
            code = 0
            try:
                signal.alarm(600)  # a hung module ends as SIGALRM, which the caller reports
                os.environ.update(env or {})
                os.dup2(out.fileno(), 1)
                os.dup2(out.fileno(), 2)
                sys.stdout = os.fdopen(1, "w", closefd=False)
                run_module(name, args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # pylint: disable=broad-except
                traceback.print_exc()
                code = 70
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        status = os.waitpid(pid, 0)[1]
        out.seek(0)
        return status, out.read().decode(errors="replace")


if __name__ == "__main__":
    if sys.argv[1:2] == ["module"]:
        run_module(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
