"""Issue 21 point 4 on the 3-node cluster: 3 kill points x {sync, expand} run next.

The phase's module runs through node 1 and SIGKILLs itself at the point (as
test_kill_points*.py do on one server, kill_points.POINTS); then, while the stopped
state stands, the application writes through node 2 (real Glance 33's DB API once
expand is done, release N-1's writes before); the next module runs through node 2
(another node than the stopped run's, as a play's next host would), must complete
and leave none of our tables or triggers on any node (the stale lease of the killed
run expires on its own); and the application writes through node 3 afterwards.

Marked ``galera``: scripts/test runs it in its galera stage (one run per cell: a kill
on the cluster is not restored from a dump).
"""

from __future__ import annotations

import pytest

import galera
import kill_points as kp
from kill_points import glance_writer  # noqa: F401  pylint: disable=unused-import
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import phases
from test_galera import gdb, watchdog  # noqa: F401  pylint: disable=unused-import

pytestmark = pytest.mark.galera
IMAGES = 12000
POINTS = ["expand-mid-copy", "expand-carried-swapped", "contract-mid-copy"]
CELLS = [(point, step) for point in POINTS for step in ("sync", "expand")]


@pytest.mark.parametrize("point_name,step", CELLS, ids=["kill-%s-%s" % c for c in CELLS])
def test_a_run_killed_on_the_cluster_breaks_no_write_and_the_next_module_finishes(
        gdb, glance_writer, tmp_path, point_name, step):  # noqa: F811
    point = kp.BY_NAME[point_name]
    engine = gdb.engine(1)
    phases.run(engine, "sync", version="mitaka02")
    galera.seed_pre_ocata_fast(gdb, IMAGES)  # the same rows, made by the server: 1 s, not 11
    for earlier in {"mitaka02": [], "expanded": ["expand"], "migrated": ["expand", "migrate"]}[point.base]:
        phases.run(engine, earlier)
    gdb.engine(1).dispose()
    kp.kill_run(point, "kill", gdb.url(1), tmp_path)
    left = kp.leftovers(gdb.url(1))
    problems = []
    who, written = kp.application_write(glance_writer, gdb.url(2))
    if not written["ok"]:
        problems.append("while stopped, through node 2: " + kp.describe_write(who, written))
    result = kp.run_module(step, gdb.url(2))
    msg = " ".join(str(result.get("msg") or "").split())
    if result.get("failed"):
        problems.append("%s through node 2 fails: %s" % (step, msg[:400]))
    for node in galera.NODES:
        after = kp.leftovers(gdb.url(node))
        if after:
            problems.append("%s %r leaves %s on node %d" % (step, msg[:80], after, node))
    who, written = kp.application_write(glance_writer, gdb.url(3))
    if not written["ok"]:
        problems.append("then, through node 3: " + kp.describe_write(who, written))
    assert not problems, "kill-%s-%s (%s; the stopped run left %s): %s" % (
        point_name, step, point.what, left, "; ".join(problems))
