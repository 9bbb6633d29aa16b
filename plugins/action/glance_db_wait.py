# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""glance_db_wait: wait for a module started with ``async`` and ``poll: 0``, printing one
line of progress per poll, and end with that module's own result.

Ansible's own ``poll`` and ``until`` print only "ASYNC POLL" or "FAILED - RETRYING". Each
poll here asks ``async_status`` whether the job ended and, while it runs, asks
glance_db_facts (on the same host, with the same connection options) for the step
the run publishes (module_utils/glance_db/progress.py), as an operator would from
another terminal (docs/progress.md).
"""

from __future__ import annotations

import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.options import argument_spec
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.progress import line

display = Display()

CONNECTION_OPTIONS = ("connection", "config_file", "config_dir")
LOCK_DATABASE = "galera_lock_database"  # where the run publishes its progress, passed on to the facts
# What async_status adds to the job's own result.
ASYNC_KEYS = ("ansible_job_id", "started", "finished", "results_file", "erased")


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _VALID_ARGS = frozenset(("jid", "poll", "timeout", LOCK_DATABASE) + CONNECTION_OPTIONS)

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        spec = dict(
            jid=dict(type="str", required=True),
            poll=dict(type="float", default=5.0),
            timeout=dict(type="int", default=86400),
            connection=dict(type="str", no_log=True),
            config_file=dict(type="list", elements="path"),
            config_dir=dict(type="path"),
        )
        spec.update(argument_spec((LOCK_DATABASE,)))
        _valid, args = self.validate_argument_spec(argument_spec=spec)
        if args["poll"] <= 0:
            raise AnsibleActionFail("poll must be more than 0 seconds.")
        facts_args = dict((name, args[name]) for name in CONNECTION_OPTIONS if args.get(name))
        if facts_args:
            facts_args[LOCK_DATABASE] = args[LOCK_DATABASE]
        async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        host = (task_vars or {}).get("inventory_hostname", "")
        deadline = time.monotonic() + args["timeout"]
        said = set()  # the steps printed as done
        status = {}
        while True:
            progress = self._progress(facts_args, task_vars) if facts_args else None
            # While its run holds the migration lock the job has not ended: async_status is asked
            # only otherwise (each poll runs modules on the host).
            if not (isinstance(progress, dict) and progress.get("state") == "running"):
                status = self._execute_module(
                    module_name="ansible.legacy.async_status", task_vars=task_vars,
                    module_args=dict(jid=args["jid"], mode="status", _async_dir=async_dir))
                if status.get("finished") or status.get("failed"):
                    break
            if time.monotonic() > deadline:
                return dict(failed=True, ansible_job_id=args["jid"], msg=(
                    "The job %s did not end within glance_db_wait's timeout of %d seconds; it may still run "
                    "(glance_db_facts shows its step). Wait again with glance_db_wait, or raise timeout."
                    % (args["jid"], args["timeout"])))
            for text in self._lines(progress, said):
                display.display("[%s] %s" % (host, text))
            time.sleep(args["poll"])
        if status.get("finished"):
            self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                 module_args=dict(jid=args["jid"], mode="cleanup", _async_dir=async_dir))
        for text in self._copies_done(status, said):
            display.display("[%s] %s" % (host, text))
        self._remove_tmp_path(self._connection._shell.tmpdir)
        return dict((key, value) for key, value in status.items() if key not in ASYNC_KEYS)

    def _progress(self, facts_args, task_vars):
        """The step the run publishes (glance_db_facts' run.progress), None when none, or why it
        could not be read (a poll that failed is no reason to stop waiting)."""
        try:
            facts = self._execute_module(module_name="openstack_ops.glance.glance_db_facts",
                                         module_args=dict(facts_args, progress_only=True), task_vars=task_vars)
        except Exception as exc:  # pylint: disable=broad-except
            return "progress unknown: %s" % to_text(exc).splitlines()[0]
        if facts.get("failed"):
            return "progress unknown: %s" % facts.get("msg")
        return facts.get("glance_db", {}).get("run", {}).get("progress")

    @staticmethod
    def _lines(progress, said):
        """The lines of one poll: each step done since the last poll, then the current one."""
        if not isinstance(progress, dict):
            return [progress or "running, no step published yet"]
        lines = []
        for step in progress.get("finished") or ():
            key = _key(step)
            if key not in said:
                said.add(key)
                lines.append(line(step))
        return lines + [progress["line"]]

    @staticmethod
    def _copies_done(result, said):
        """The copies the job's result reports (table_copies) that no poll saw done: the last
        ones, when the run ended before the next poll."""
        copies = result.get("table_copies") or []
        phase = (result.get("plan") or {}).get("phase")
        lines = []
        for index, copy in enumerate(copies, 1):
            step = dict(phase=phase, step="copy", index=index, count=len(copies), table=copy.get("table"),
                        rows_done=copy.get("rows"), rows_total=copy.get("rows"), percent=100,
                        seconds=copy.get("seconds"))
            if _key(step) not in said and copy.get("rows") is not None:
                said.add(_key(step))
                lines.append(line(step))
        return lines


def _key(step):
    """A step, the same whether a poll saw it done or the job's result reports it."""
    if step.get("step") == "copy":
        return ("copy", step.get("index"))
    return (step.get("step"), step.get("name"))
