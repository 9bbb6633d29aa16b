"""Issue 21 points 1 and 4: SIGTERM at every kill point of the online route on one MariaDB
server (every step of a shadow copy, and of migrate): the run stops at its next safe point and
clears its copy (cell "stopped"), and a Glance write succeeds on what it left (cell "glance");
at one point of each kind, every next module too (contract 12, "Never break Glance"; contract 9).

How, and what each cell checks: kill_points.py. One cell is one test id: SIGNAL-POINT-NEXT.
"""

from __future__ import annotations

import pytest

import kill_points as kp
from kill_points import glance_writer, kill_point_states  # noqa: F401  pylint: disable=unused-import

CELLS = kp.GROUPS['sigterm']


@pytest.mark.parametrize("cell", CELLS, ids=[kp.cell_id(c) for c in CELLS])
def test_a_run_terminated_breaks_no_write_and_the_next_module_finishes_or_refuses(cell, kill_point_states, glance_writer):  # noqa: F811
    kp.run_cell(cell, kill_point_states, glance_writer)
