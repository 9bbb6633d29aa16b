# -*- coding: utf-8 -*-
"""Hold a shadow copy's swap until the operator releases it (the ``hold_swap`` option).

The swap (cut_over.py) is the copy's one short stall: the children's foreign keys
repointed and one RENAME TABLE, which queue the table's writers for a moment, and
on Galera the moment other nodes' writes to it can be aborted. With ``hold_swap``
set to a file's path, each copy, once all its rows are copied, writes that file and
waits while it exists (gh-ost's postponed cut-over): the operator removes it to
release the swap, at a quiet moment. Meanwhile the copy's triggers keep it in step:
each write to the table also writes the copy.

While held:
- the migration lock stays held; on Galera its lease is renewed by its heartbeat
  thread (lock.GaleraLease) as during any long step, so no other run takes over;
- the copy's DDL connection is kept from going idle (``SELECT 1`` at each poll), so
  a long hold does not meet the server's ``wait_timeout``;
- SIGTERM stops the run at the next poll, which clears the copy as at any batch;
- the hold counts toward Ansible's ``async`` time: a job killed at its end leaves
  the copy behind for the next run to clear (and copy again).
"""

from __future__ import annotations

import os
import socket
import time

from .. import stopping
from ..errors import ConfigurationError

POLL_SECONDS = 1.0


class SwapHold(object):
    """Waits before each swap while the release file exists (see the module's doc)."""

    def __init__(self, path, sleep=time.sleep, poll=POLL_SECONDS, on_wait=None):
        self.path = path
        self.sleep = sleep
        self.poll = poll
        # The progress hook (issue 26, point 1): called at each poll as
        # on_wait(table, path, seconds held so far), the step being "waiting to swap".
        self.on_wait = on_wait
        directory = os.path.dirname(os.path.abspath(path))
        if not (os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)):
            raise ConfigurationError(
                "hold_swap is %s, but its directory %s does not exist or is not writable by this user on the host "
                "that runs the module: create it, or name a file in a directory this user may write." % (path, directory))

    def wait(self, conn, table):
        """Write the release file and wait while it exists; return the seconds held."""
        started = time.monotonic()
        self._write(table)
        try:
            while os.path.exists(self.path):
                stopping.check("while holding the swap of %s (it waited for %s to be removed)" % (table, self.path))
                if self.on_wait is not None:
                    self.on_wait(table, self.path, time.monotonic() - started)
                conn.exec_driver_sql("SELECT 1").fetchall()  # the connection stays alive for the swap
                self.sleep(self.poll)
        except BaseException:
            self.release()  # ours: a file left behind would say a copy still waits
            raise
        return round(time.monotonic() - started, 2)

    def release(self):
        try:
            os.remove(self.path)
        except OSError:
            pass

    def _write(self, table):
        with open(self.path, "w") as handle:
            handle.write(
                "The shadow copy of table %s is complete and kept in step by its triggers; its swap (RENAME "
                "TABLE) waits while this file exists. Remove this file to release it.\n"
                "host: %s\npid: %d\nsince: %s\n" % (table, socket.gethostname(), os.getpid(),
                                                    time.strftime("%Y-%m-%dT%H:%M:%S%z")))
