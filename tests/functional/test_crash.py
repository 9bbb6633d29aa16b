"""A run SIGKILLed before any one of its writes leaves a database the next run finishes.

For each phase, a reference run counts its writing statements (DDL, alembic_version
rows, data migration batches); then, for each kill point k, a fresh database is
taken to the phase's starting point, a run is killed just before its k-th write,
and the same phase run again must complete, with the schema equal to real
Glance's head and every image's visibility as Glance's rules give. On MySQL,
where DDL commits statement by statement, this lands inside revisions too.

GLANCE_CRASH_STRIDE (default 3) tests every n-th kill point; 1 tests them all.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from parity import HEAD, differences
import run_phase
from seed import location_metadata, seed_pre_ocata, visibilities

STRIDE = int(os.environ.get("GLANCE_CRASH_STRIDE", "3"))
ARGS = {"sync": {"batch_size": 7}, "migrate": {"batch_size": 7}}
# What comes before the phase under test, and after it, on the way to the head.
BEFORE = {"sync": [], "expand": [], "migrate": ["expand"], "contract": ["expand", "migrate"]}
AFTER = {"sync": [], "expand": ["migrate", "contract"], "migrate": ["contract"], "contract": []}
CASES = [(e, p) for e in ("sqlite", "mysql") for p in ("sync", "expand", "migrate", "contract")] + [
    ("postgresql", "sync")]


def _prepare(db, phase):
    phases.run(db.engine, "sync", version="mitaka02")
    expected = seed_pre_ocata(db)
    for earlier in BEFORE[phase]:
        phases.run(db.engine, earlier)
    return expected


def _run_killed(db, phase, point):
    """Run the phase in a forked child armed to SIGKILL itself before its
    point-th write; return the child's wait status. A fork starts with every
    module already imported, which saves a second of start-up per kill point."""
    pid = os.fork()
    if pid == 0:  # the child: its own engine; os._exit skips the parent's finalizers
        signal.alarm(120)  # a hung run ends as SIGALRM, which the caller's assert reports
        try:
            run_phase.main(db.url, phase, json.dumps(ARGS.get(phase, {})), None,
                           "before-write:%d" % point)
        finally:
            os._exit(0)
    return os.waitpid(pid, 0)[1]


def _count_writes(db, phase):
    count = {"writes": 0}

    def count_write(conn, cursor, statement, *rest):
        if run_phase.WRITE.match(statement):
            count["writes"] += 1

    sa.event.listen(db.engine, "before_cursor_execute", count_write)
    try:
        phases.run(db.engine, phase, **ARGS.get(phase, {}))
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count_write)
    return count["writes"]


@pytest.mark.parametrize("engine_name,phase", CASES, ids=["%s-%s" % c for c in CASES])
def test_run_killed_before_any_write_is_finished_by_the_next(make_database, engine_name, phase):
    start = make_database(engine_name)  # the phase's starting point, copied for each run
    expected = _prepare(start, phase)
    reference = make_database(engine_name, copy_of=start)
    writes = _count_writes(reference, phase)
    reference.drop()
    assert writes > 0

    kill_points = list(range(1, writes + 1, STRIDE))
    for point in kill_points:
        db = make_database(engine_name, copy_of=start)
        status = _run_killed(db, phase, point)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (point, status)

        resumed = phases.run(db.engine, phase, **ARGS.get(phase, {}))
        for later in AFTER[phase]:
            phases.run(db.engine, later)
        where = "%s killed before write %d of %d" % (phase, point, writes)
        assert resumed.after["next_step"] == ("none" if phase in ("sync", "contract") else
                                              {"expand": "migrate", "migrate": "contract"}[phase]) \
            or not resumed.changed, where
        assert differences(db.engine, engine_name, HEAD) == "", where
        assert visibilities(db) == expected, where
        assert location_metadata(db) == sorted([{"store": "fast"}] * len(expected), key=str), where
        db.drop()
    print("%s/%s: %d kill points of %d writes" % (engine_name, phase, len(kill_points), writes))
