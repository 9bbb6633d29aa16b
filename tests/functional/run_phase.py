"""Run one phase in its own process: python run_phase.py URL PHASE [JSON_ARGS] [START_AT] [KILL].

Prints {"changed": ..., "error": ...} as JSON. Used to race several runs at
once and to kill a run part-way. KILL is "before-write:N" (SIGKILL itself just
before its N-th writing statement) or "after-commit:N" (just after its N-th
commit), for the crash tests; "stop-before-write:N" SIGSTOPs it there instead.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".build" / "collections"))

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (  # noqa: E402
    connection, phases,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import (  # noqa: E402
    GlanceDbError,
)


WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|CREATE|ALTER|DROP)\b", re.IGNORECASE)


def arm_kill(engine, kill):
    """SIGKILL this process at the given point of its run; "stop-" + the point:
    SIGSTOP it there instead (frozen mid-phase, whatever the machine's speed)."""
    when, count = kill.split(":")
    sig = signal.SIGKILL
    if when.startswith("stop-"):
        when, sig = when[len("stop-"):], signal.SIGSTOP
    seen = {"n": 0}

    def maybe_die():
        seen["n"] += 1
        if seen["n"] == int(count):
            os.kill(os.getpid(), sig)

    if when == "before-write":
        @connection.sa.event.listens_for(engine, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):
            if WRITE.match(statement):
                maybe_die()
    else:
        @connection.sa.event.listens_for(engine, "commit")
        def after(conn):
            maybe_die()


def main(url, phase, args="{}", start_at=None, kill=None):
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


if __name__ == "__main__":
    main(*sys.argv[1:])
