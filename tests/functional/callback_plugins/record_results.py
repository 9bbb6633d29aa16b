"""A test-only callback: every task's result per host, written as JSON when the play ends.

Enable it with ANSIBLE_CALLBACK_PLUGINS=<this directory>, ANSIBLE_CALLBACKS_ENABLED=record_results
and RECORD_RESULTS_FILE=<path>. The file holds {"tasks": [{"name", "hosts": {host: result}}],
"stats": {host: {"ok", "changed", "failures", ...}}}; tests read a play's outcome from it
instead of parsing the screen output.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Record each result, in the order the tasks ran."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.tasks = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.tasks.append({"name": task.get_name(), "hosts": {}})

    def _record(self, result, **extra):
        record = dict(result._result, **extra)  # pylint: disable=protected-access
        self.tasks[-1]["hosts"][result._host.get_name()] = record  # pylint: disable=protected-access

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        with open(os.environ["RECORD_RESULTS_FILE"], "w", encoding="utf-8") as out:
            json.dump({"tasks": self.tasks, "stats": summary}, out, default=str)
