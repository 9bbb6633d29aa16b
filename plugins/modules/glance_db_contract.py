#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_contract
short_description: Contract a Glance database after every node runs the new release
version_added: 1.0.0
description:
  - The last phase of a zero-downtime upgrade, like C(glance-manage db contract). It drops what the previous
    release needed (old columns, tables and the MySQL triggers).
  - Refuses before expand (it never applies expand revisions implicitly, unlike Alembic), and while any data
    migration is pending (run M(openstack_ops.glance.glance_db_migrate) first).
  - Before dropping a column it verifies that no data would be lost, for example that every image has a
    visibility before C(is_public) goes, and refuses otherwise.
  - Refused on PostgreSQL, as by Glance; use M(openstack_ops.glance.glance_db_sync) offline there.
options:
  version:
    description:
      - The contract revision to stop at. Default V(heads), the newest contract revision.
    type: str
    default: heads
extends_documentation_fragment:
  - openstack_ops.glance.glance_db
  - openstack_ops.glance.glance_db.LOCK
  - openstack_ops.glance.glance_db.LOCK_DATABASE
  - openstack_ops.glance.glance_db.SCHEMA_CHANGE
  - openstack_ops.glance.glance_db.SHADOW_COPY
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
- name: Contract once every Glance API node runs the new release
  openstack_ops.glance.glance_db_contract:
    config_file: /etc/glance/glance-api.conf
  run_once: true
"""

RETURN = r"""
msg:
  description:
    - >-
      What the run did, in C(glance-manage db contract)'s words: V(Upgraded database to: HEAD, current revision(s): ROWS),
      or V(Database is up to date. No migrations needed.).
    - In check mode, what it would do (revisions and rows); the same words as above when there is nothing to do.
  returned: always
  type: str
  sample: "Database is up to date. No migrations needed."
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
    leftovers:
      description: What a stopped run left (copy tables and triggers), cleared before anything else.
      type: list
      elements: dict
    table_copies:
      description:
        - The shadow copies the revisions are expected to make (MySQL/MariaDB, a table the server counts
          10,000 rows or more in), each with C(revision), C(table) and C(estimated_bytes) as in RV(table_copies).
      type: list
      elements: dict
  sample: {"phase": "contract", "revisions": ["ocata_contract01", "pike_contract01"], "data_migrations": []}
revisions_applied:
  description: The revisions applied, in order.
  returned: always
  type: list
  elements: str
data_migrations:
  description:
    - Rows migrated and rows remaining per data migration that ran.
    - On a Galera node also C(flow_control), as in M(openstack_ops.glance.glance_db_migrate)'s result.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "ocata_migrate01_community_images", "migrated": 120, "remaining": 0}]
durations:
  description:
    - Each shadow copy and data migration, in the order the run takes them, with C(step) (C(copy) or
      C(data migration)), C(table) or C(name), C(rows), and C(estimated) (C(seconds), C(low), C(high), C(basis)).
    - The estimate is made as in M(openstack_ops.glance.glance_db_expand)'s result.
    - After a run each also has its real C(seconds).
  returned: always
  type: list
  elements: dict
table_copies:
  description:
    - The large tables rebuilt through a shadow copy instead of one long C(ALTER TABLE) (MySQL/MariaDB,
      tables of 10,000 rows or more), each with C(table), C(alter) (the change, as an C(ALTER TABLE)
      clause), C(rows) copied, C(batches), C(seconds), C(held_seconds) (with O(hold_swap)) and C(estimated_bytes), the room it needed in the
      server's data directory (C(data), C(indexes), C(binary_log), C(total)). Empty elsewhere and when no
      such change ran.
    - Before each copy the room is checked against the free space of O(mysql_datadir) when it is given
      (the run is refused, naming the figures, before anything is changed); otherwise a warning says
      how much is needed, as the server does not report its free disk.
    - See the collection's docs/galera.md, "Schema changes that do not hold the cluster".
  returned: always
  type: list
  elements: dict
  sample:
    - table: images
      alter: MODIFY visibility ENUM('private','public','shared','community') NOT NULL DEFAULT 'shared'
      rows: 200000
      batches: 201
      seconds: 21.4
      estimated_bytes: {data: 63963136, indexes: 52510720, binary_log: 0, total: 116473856}
"""

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import COPYING_PHASE_OPTIONS, GlanceDbModule


class GlanceDbContract(GlanceDbModule):
    run_options = COPYING_PHASE_OPTIONS
    settles_directly = True
    returns_table_copies = True
    argument_spec = dict(version=dict(type="str", default="heads"))

    def run(self):
        self.run_phase("contract", version=self.params["version"])


def main():
    GlanceDbContract()()


if __name__ == "__main__":
    main()
