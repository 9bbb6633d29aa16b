#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_purge
short_description: Delete soft-deleted rows from a Glance database, like glance-manage db purge
version_added: 1.0.0
description:
  - Deletes the rows that Glance soft-deleted more than O(age_in_days) days ago, the oldest first, at most
    O(max_rows) per table, like C(glance-manage db purge) (tables C(task_info), C(image_properties), C(image_tags),
    C(image_locations), C(image_members), C(tasks)).
  - With O(images_table=true), like C(glance-manage db purge_images_table), deletes C(images) rows instead, which
    plain purges never touch; a purged image id could be given to a new image (OSSN-0075), so keep them long.
  - Where Glance fails, this succeeds and never leaves an orphan. An image's remaining child rows (properties,
    tags, locations, members, soft-deleted or not) are deleted with it in the same transaction, where
    Glance 33 stops on a foreign-key error and purges no image (on SQLite too, where oslo.db turns foreign keys on).
    A task and its C(task_info) go in the same batch.
  - A row whose C(deleted_at) is set but C(deleted) is false is still visible through the API and is kept
    (Glance would delete it).
  - Works in batches of O(batch_size) rows, each its own short transaction that waits at most
    O(lock_wait_timeout) seconds for a row lock and is retried with backoff, so it can run while the API serves.
  - Holds the migration lock, so it never runs during a schema upgrade by this collection.
  - >-
    While it runs it publishes its progress, one step per table (C(purge: table 2 of 5, image_tags: 4,700/8,333)),
    which M(openstack_ops.glance.glance_db_facts) shows in C(run.progress) and M(openstack_ops.glance.glance_db_wait)
    prints (C(docs/progress.md)).
extends_documentation_fragment:
  - openstack_ops.glance.glance_db
  - openstack_ops.glance.glance_db.LOCK
  - openstack_ops.glance.glance_db.LOCK_DATABASE
options:
  age_in_days:
    description:
      - Purge rows soft-deleted more than this many days ago.
      - Defaults to V(30), or V(180) with O(images_table=true) (Glance's defaults).
      - Refused when negative or not less than the number of days since 1970, as glance-manage refuses it.
    type: int
  max_rows:
    description:
      - At most this many rows per table, the oldest first; V(-1) purges every row old enough.
      - With O(images_table=true) the limit counts images; their child rows go with them.
    type: int
    default: 100
  images_table:
    description:
      - Purge the C(images) table (and the child rows of the images purged) instead of the other tables.
    type: bool
    default: false
  batch_size:
    description:
      - Rows deleted per transaction (with O(images_table=true), images, their child rows with them).
      - On a Galera node at most 250 (every other node applies a batch as one write set, and its own writers'
        commits wait behind it).
    type: int
    default: 1000
  lock_wait_timeout:
    description:
      - Seconds a batch waits for a row lock held by the application before it is rolled back and retried
        (MySQL/MariaDB C(innodb_lock_wait_timeout) and C(lock_wait_timeout), PostgreSQL C(lock_timeout)).
      - After six tries the run stops with a message; the rows purged until then stay purged.
    type: int
    default: 5
attributes:
  check_mode:
    support: full
    description: Returns the rows per table that would be deleted, and deletes nothing.
  diff_mode:
    support: full
    description: The soft-deleted rows older than the age, per table, before and after.
  idempotent:
    support: full
    description:
      - With nothing old enough left, reports C(changed=false) and writes nothing.
      - With more rows than O(max_rows), each run purges the next ones.
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Purge what Glance soft-deleted more than 30 days ago, 100 rows per table (glance-manage db purge)
  openstack_ops.glance.glance_db_purge:
    config_file: /etc/glance/glance-api.conf

- name: Purge all of it, older than 90 days
  openstack_ops.glance.glance_db_purge:
    config_file: /etc/glance/glance-api.conf
    age_in_days: 90
    max_rows: -1

- name: Purge images deleted more than 180 days ago (glance-manage db purge_images_table)
  openstack_ops.glance.glance_db_purge:
    config_file: /etc/glance/glance-api.conf
    images_table: true
    max_rows: -1
"""

RETURN = r"""
rows:
  description: Rows deleted per table; in check mode, the rows that would be deleted.
  returned: always
  type: dict
  sample: {"task_info": 3, "image_properties": 100, "image_tags": 12, "image_locations": 7,
           "image_members": 0, "tasks": 3}
total:
  description: The sum of RV(rows).
  returned: always
  type: int
age_in_days:
  description: The age used (its default depends on O(images_table)).
  returned: always
  type: int
msg:
  description: The summary in glance-manage's words.
  returned: always
  type: str
  sample: "Purging deleted rows older than 30 day(s): Deleted 3 row(s) from table task_info; ..."
flow_control:
  description:
    - >-
      What the batches met and did under the cluster's flow control: C(batch_rows) (O(batch_size), at most 250), C(backoffs) (batches during which the cluster
      was paused more than a tenth of the time, after which the next batch waited until the pause ended, at most 5 s,
      and was halved), C(waited_seconds), C(paused_seconds) (the time the node was paused by flow control while
      the purge ran), C(messages_received) (flow control messages) and C(smallest_batch) (rows). A purge that
      backed off also warns.
  returned: on a Galera node, when rows were purged
  type: dict
  sample: {"batch_rows": 250, "backoffs": 3, "waited_seconds": 1.6, "paused_seconds": 2.1, "messages_received": 8, "smallest_batch": 62}
"""

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import purge
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import GlanceDbModule
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.options import LOCK_OPTIONS


class GlanceDbPurge(GlanceDbModule):
    run_options = LOCK_OPTIONS
    argument_spec = dict(
        age_in_days=dict(type="int"),
        max_rows=dict(type="int", default=purge.DEFAULT_MAX_ROWS),
        images_table=dict(type="bool", default=False),
        batch_size=dict(type="int", default=purge.DEFAULT_BATCH_SIZE),
        lock_wait_timeout=dict(type="int", default=purge.DEFAULT_ROW_LOCK_WAIT_SECONDS),
    )

    def run(self):
        job = purge.Purge(self.engine, age_in_days=self.params["age_in_days"],
                          max_rows=self.params["max_rows"], images_table=self.params["images_table"],
                          batch_size=self.params["batch_size"],
                          lock_wait_timeout=self.params["lock_wait_timeout"])
        result = purge.run(job, self.options, check_mode=self.ansible.check_mode,
                           diff=self.ansible._diff, warn=lambda warning: self.ansible.warn(self.redact(warning)))
        self.exit(result)


def main():
    GlanceDbPurge()()


if __name__ == "__main__":
    main()
