#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_migrate
short_description: Run the pending data migrations of a Glance rolling upgrade
version_added: 1.0.0
description:
  - The middle phase of a zero-downtime upgrade, like C(glance-manage db migrate), but it runs every pending data
    migration of every release between the database and the target (Ocata visibility, Train C(backend) to C(store)),
    not only the newest release's.
  - Works in key-ordered batches, each its own short transaction, so application writes keep flowing; an interrupted
    run resumes where it stopped.
  - Refuses before expand. Refused on PostgreSQL, as by Glance; use M(openstack_ops.glance.glance_db_sync) offline there.
options:
  batch_size:
    description:
      - Rows per batch; each batch is one transaction.
      - On a Galera node at most 250, whatever is asked (every other node applies a batch as one write set, and the
        application's commits there wait behind it).
    type: int
    default: 5000
  max_rows:
    description:
      - Stop after about this many rows (a throttled run); run again to continue. Default all rows.
    type: int
extends_documentation_fragment:
  - openstack_ops.glance.glance_db
  - openstack_ops.glance.glance_db.LOCK
  - openstack_ops.glance.glance_db.LOCK_DATABASE
  - openstack_ops.glance.glance_db.SCHEMA_CHANGE
attributes:
  check_mode:
    support: full
    description: Returns the plan and writes nothing.
  diff_mode:
    support: full
    description: Returns the database version before and after.
  idempotent:
    support: full
    description: With nothing to do it reports no change and writes nothing.
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Move the data while both releases run
  openstack_ops.glance.glance_db_migrate:
    config_file: /etc/glance/glance-api.conf
  run_once: true

- name: A throttled run of at most 100000 rows
  openstack_ops.glance.glance_db_migrate:
    config_file: /etc/glance/glance-api.conf
    max_rows: 100000
  register: migrated
"""

RETURN = r"""
msg:
  description:
    - >-
      What the run did, in C(glance-manage db migrate)'s words: V(Migrated N rows) (with the rows that remain after a O(max_rows) run),
      V(Database migration is up to date. No migration needed.), or V(Database is up to date. No migrations needed.) once contracted.
    - In check mode, what it would do (revisions and rows); the same words as above when there is nothing to do.
  returned: always
  type: str
  sample: "Migrated 1200 rows"
glance_db:
  description: The database after the run, in the shape returned by M(openstack_ops.glance.glance_db_facts).
  returned: always
  type: dict
plan:
  description: What the run does (check mode) or did.
  returned: always
  type: dict
  contains:
    revisions_after:
      description: The rows of C(alembic_version) the run leaves (in check mode, would leave).
      type: list
      elements: str
      sample: ["2024_1_contract01"]
  sample: {"phase": "migrate", "revisions": [], "data_migrations": [{"name": "ocata_migrate01_community_images", "rows": 120}]}
revisions_applied:
  description: The revisions applied, in order.
  returned: always
  type: list
  elements: str
data_migrations:
  description:
    - Rows migrated and rows remaining per data migration that ran.
    - >-
      On a Galera node also C(flow_control), what its batches met and did under the cluster's flow control:
      C(batch_rows) (the rows a batch takes when nothing slows it: O(batch_size), at most 250), C(backoffs) (batches
      during which the cluster was paused more than a tenth of the time, after which the next batch waited until the
      pause ended, at most 5 s, and was halved), C(waited_seconds), C(paused_seconds) (the time the node was paused by
      flow control while it ran), C(messages_received) (flow control messages) and C(smallest_batch) (rows). A run
      that backed off also warns.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "ocata_migrate01_community_images", "migrated": 120, "remaining": 0}]
durations:
  description:
    - Each data migration, with C(step) (C(data migration)), C(name), C(rows) and C(estimated) (C(seconds), C(low),
      C(high), C(basis)); on MySQL/MariaDB from a short sample measured on the server where one can be taken,
      otherwise from rates measured on test servers, as in M(openstack_ops.glance.glance_db_expand)'s result.
    - After a run each also has its real C(seconds).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import MIGRATE_OPTIONS, GlanceDbModule


class GlanceDbMigrate(GlanceDbModule):
    run_options = MIGRATE_OPTIONS  # batch_size and max_rows among them
    settles_directly = True

    def run(self):
        if self.options.batch_size < 1 or (self.options.max_rows or 1) < 1:
            self.fail("batch_size and max_rows must be positive whole numbers.")
        self.run_phase("migrate")


def main():
    GlanceDbMigrate()()


if __name__ == "__main__":
    main()
