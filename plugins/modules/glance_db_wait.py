#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_wait
short_description: Wait for a Glance database module started with async, printing its progress
version_added: 1.0.0
description:
  - Waits for a job started with C(async) and C(poll=0) (M(openstack_ops.glance.glance_db_expand),
    M(openstack_ops.glance.glance_db_migrate), M(openstack_ops.glance.glance_db_contract) and the other writing
    modules), and ends with that module's own result (its C(msg), C(changed) and return values), failed when it failed.
  - "While the job runs, prints one line per poll with the step the run publishes, read with
    M(openstack_ops.glance.glance_db_facts) on the same host, for example
    C(expand: copy 2 of 3, images: 412,000/1,000,000 (41 %), 2,100 rows/s, ETA 4 min 40 s).
    Ansible's own C(poll) and C(until) print only C(ASYNC POLL) or C(FAILED - RETRYING)."
  - Where the progress is published, for each engine, is in C(docs/progress.md) (not on PostgreSQL).
  - An action plugin; it runs C(async_status) and the facts module on the task's host.
options:
  jid:
    description:
      - The C(ansible_job_id) of the job, registered from the task started with C(async) and C(poll=0).
    type: str
    required: true
  poll:
    description:
      - Seconds between two polls.
    type: float
    default: 5
  timeout:
    description:
      - Seconds to wait at most; the job's own C(async) limit usually ends it first.
    type: int
    default: 86400
extends_documentation_fragment:
  - openstack_ops.glance.glance_db
  - openstack_ops.glance.glance_db.LOCK_DATABASE
attributes:
  check_mode:
    support: full
    description: Waits for the job in check mode as well; the job itself ran in check mode or not.
  diff_mode:
    support: none
    description: The job's own diff, if any, is in the result.
  idempotent:
    support: full
    description: Reads only; whether anything changed is the job's own C(changed).
  action:
    support: full
    description: Runs on the controller, and the modules it calls on the task's host.
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Start the expand
  openstack_ops.glance.glance_db_expand:
    config_file: /etc/glance/glance-api.conf
  async: 7200
  poll: 0
  register: expand_job

- name: Wait for the expand, one line of progress per poll
  openstack_ops.glance.glance_db_wait:
    jid: "{{ expand_job.ansible_job_id }}"
    config_file: /etc/glance/glance-api.conf
    poll: 5
  register: expand
"""

RETURN = r"""
msg:
  description: The job's own C(msg).
  returned: always
  type: str
changed:
  description: The job's own C(changed).
  returned: always
  type: bool
"""
