# -*- coding: utf-8 -*-
"""Stop a writing run at its next safe point on SIGTERM, as Ctrl-C stops it.

A supervisor (systemd, an Ansible timeout, an operator's kill) asks a process to end
with SIGTERM. Python's default ends it at once, wherever it is: in a shadow copy,
its table and triggers stay behind. Here SIGTERM only asks: the run stops at the
next batch or revision (check()), with an error whose handling clears what it made
(a copy clears itself on the way out, as on Ctrl-C), and the module reports it.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from .errors import GlanceDbError

_requested = []  # the signals received while a run listens


class Stopped(GlanceDbError):
    """The run was asked to stop (SIGTERM) and did, at a safe point."""


def check(where):
    """Raise Stopped when a SIGTERM came since the run began; ``where`` names the point."""
    if _requested:
        raise Stopped("The run stopped on SIGTERM %s; what it had started there was cleared. Run it again: "
                      "it carries on from where it stopped." % where)


@contextlib.contextmanager
def on_sigterm():
    """Within the block, SIGTERM asks the run to stop at its next check(). Signals reach
    the main thread only: elsewhere (a run in a thread) the default stays."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: _requested.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        del _requested[:]
