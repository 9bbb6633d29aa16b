"""Issue 21 point 4: every kill point of the online route on one MariaDB server, then
every next module (contract 12, "Never break Glance"; contract 9): SIGKILL where a copy carries Glance's triggers, in migrate's batches and in contract's copy.

How, and what each cell checks: kill_points.py. One cell is one test id: SIGNAL-POINT-NEXT.
"""

from __future__ import annotations

import pytest

import kill_points as kp
from kill_points import glance_writer, kill_point_states  # noqa: F401  pylint: disable=unused-import

CELLS = kp.GROUPS['carried_migrate_contract']


@pytest.mark.parametrize("cell", CELLS, ids=[kp.cell_id(c) for c in CELLS])
def test_a_run_killed_later_breaks_no_write_and_the_next_module_finishes_or_refuses(cell, kill_point_states, glance_writer):  # noqa: F811
    kp.run_cell(cell, kill_point_states, glance_writer)
