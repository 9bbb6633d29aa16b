"""Issue 21 point 4: every kill point of the online route on one MariaDB server, then
every next module (contract 12, "Never break Glance"; contract 9): SIGKILL at each step of expand's first shadow copy of images.

kill_points.py says how: each kill point (kill_points.POINTS) is reached by the phase's
module sending itself the signal at one statement; the state it leaves is dumped once
and cloned for each cell:

* ``glance``: the application's write succeeds while the stopped state stands
  (real Glance 33's DB API once expand is done, release N-1's writes before);
* each of sync, expand, migrate, contract, facts, purge and metadefs, run next,
  completes (leaving none of our tables or triggers, the schema real Glance has
  there, no image lost) or refuses with one msg naming the next step; facts
  report what a stopped run left; purge and metadefs refuse while it stands;
  after it the application's write still succeeds.

One cell is one test id: SIGNAL-POINT-NEXT.
"""

from __future__ import annotations

import pytest

import kill_points as kp
from kill_points import glance_writer, kill_point_states  # noqa: F401  (fixtures)

CELLS = kp.GROUPS['first_copy']


@pytest.mark.parametrize("cell", CELLS, ids=[kp.cell_id(c) for c in CELLS])
def test_a_run_killed_in_a_copy_breaks_no_write_and_the_next_module_finishes_or_refuses(cell, kill_point_states, glance_writer):  # noqa: F811
    kp.run_cell(cell, kill_point_states, glance_writer)
