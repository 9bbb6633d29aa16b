# -*- coding: utf-8 -*-
"""What a revision needs to know about the run it is part of (online or offline)."""

from __future__ import annotations

from ..deps import op

# MigrationContext option our runner sets for an online (expand) run.
ONLINE_OPTION = "glance_online"


def triggers_wanted(bind):
    """MySQL triggers are created only by an online expand, never by sync."""
    return bind.dialect.name == "mysql" and bool(op.get_context().opts.get(ONLINE_OPTION))


def drop_triggers_if_present(bind, names):
    """Drop MySQL triggers; an offline sync never created them."""
    if bind.dialect.name == "mysql":
        for name in names:
            op.execute("DROP TRIGGER IF EXISTS %s" % name)
