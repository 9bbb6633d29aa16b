# -*- coding: utf-8 -*-
"""How a table is altered while Glance writes to it (MySQL/MariaDB): the route, and where to change it.

Every statement a revision runs on MySQL passes through one hook on Alembic
(alembic_hook.py). A statement that changes a table (a column added, dropped or
changed, an index built or dropped: statements.alteration) takes one of three
routes, chosen by route() below for the changes of a table that follow one
another in a revision:

- INSTANT: none of them rebuilds the table (ADD COLUMN, DROP COLUMN, DROP INDEX):
  each statement runs with LOCK=NONE, which the server makes a metadata change.
- IN_PLACE: one rebuilds the table (MODIFY, CHANGE) or builds an index, on a table
  a copy does not take (takes_copy: fewer than MIN_ROWS rows, no one-column primary
  key, triggers a copy cannot carry), or in an offline run (sync): each statement
  runs with LOCK=NONE, so writes go on while it runs, but wait at its end (on
  Galera, for its whole run: Total Order Isolation). Where the server refuses
  LOCK=NONE, the statement runs without it and a warning says so.
- SHADOW_COPY: the same on a table a copy takes, in an online run (expand,
  contract): all of those changes are made on an empty copy, which is filled in
  key-ordered batches while triggers keep it in step, then swapped in (the
  pt-online-schema-change way). Writes only ever wait for short statements.

INSTANT and IN_PLACE send the same statement, with LOCK=NONE and no ALGORITHM:
the server picks INSTANT where it can, and the names say what to expect of it.

Where to change what:
- when a table is copied: MIN_ROWS, takes_copy() and route(), here;
- the copy's batch size: BATCH_ROWS, here (on Galera smaller, and paced under flow
  control: flow_control.py);
- which statements rebuild, and each one's LOCK=NONE form: statements.py;
- the hook itself, its lock-wait retries, and finishing a revision a killed run
  left half-done: alembic_hook.py;
- holding a table's file while the server rebuilds it (mysql_datadir): tablespace_hold.py;
- what is read of a table (rows, columns, keys, triggers, foreign keys, sizes,
  the room a copy needs): inspector.py;
- the copy: its triggers and batches, and clearing a stopped one: copier.py;
- the cut-over: children's foreign keys, the swap, the old table's drop, Glance's
  triggers carried across: cut_over.py; which of Glance's triggers are carried,
  and how each is written: the revision that creates them (``carried_triggers``,
  gathered in revisions/__init__.py and passed in by runner.py);
- the names of what a stopped copy leaves, and who clears it: leftovers.py;
- what check mode expects the copies of a run to need: expected_copies(), here;
- the short measured sample of a copy behind the estimates (estimates.py): sample.py.
"""

from __future__ import annotations

from ..graph import GRAPH
from . import inspector

# A table with fewer rows is altered in place: its rebuild holds writes only briefly.
MIN_ROWS = 10000
BATCH_ROWS = 1000  # on Galera, flow_control.GALERA_BATCH_ROWS

INSTANT = "instant"
IN_PLACE = "in place"
SHADOW_COPY = "shadow copy"

OFFLINE_PHASES = ("sync",)


def runs_online(phase):
    """Whether ``phase`` runs while the application writes: every phase but sync. Only an
    online run copies tables, creates Glance's triggers (revisions/online.py) and pauses
    between its batches."""
    return phase not in OFFLINE_PHASES


def route(rebuilds, copyable):
    """INSTANT, IN_PLACE or SHADOW_COPY for the changes of one table that follow one
    another in a revision; a copy makes all of them at once (one pass over the rows).

    ``rebuilds``: for each change, whether it rebuilds the table or builds an index
    (statements.alteration); ``copyable``: whether a copy takes the table (takes_copy,
    in an online run)."""
    if not any(rebuilds):
        return INSTANT
    return SHADOW_COPY if copyable else IN_PLACE


def takes_copy(conn, table, carried, min_rows):
    """Whether a copy takes ``table``: ``min_rows`` rows or more (MIN_ROWS in the product),
    a one-column primary key (the batches walk it), and no triggers of its own but the
    ``carried`` ones (the swap leaves a table's triggers behind with the old table)."""
    if inspector.rows_up_to(conn, table, min_rows) < min_rows:
        return False
    uncarried = set(inspector.own_triggers(conn, table)) - set(carried)
    return not uncarried and len(inspector.primary_key(conn, table)) == 1


def expected_copies(state, revisions):
    """The shadow copies an online run of ``revisions`` is expected to make on MySQL (each
    revision's ``rebuilds`` of a table of MIN_ROWS rows or more, as the server estimates
    its rows: ``estimated_rows``, from which estimates.py tells the time each is expected to
    take), with the room each needs (inspector.space_needed): one copy at a time, so the
    largest is what must be free."""
    if state.engine_name != "mysql":
        return []
    found = []
    for revision in revisions:
        for table in getattr(GRAPH.get(revision).script, "rebuilds", ()):
            size = state.table_sizes.get(table)
            if size and size["rows"] >= MIN_ROWS:
                found.append({"revision": revision, "table": table, "estimated_rows": size["rows"],
                              "estimated_bytes": inspector.space_needed(
                                  size["data"], size["indexes"], bool((state.mysql or {}).get("binary_logging")))})
    return found
