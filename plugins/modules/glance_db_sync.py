#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_sync
short_description: Create or upgrade a Glance database offline
version_added: 1.0.0
description:
  - Brings an empty Glance database, or one at any known revision, to the newest schema (or to O(version)),
    like C(glance-manage db sync) but with every data migration of every release on the way.
  - Offline, so run it while no Glance API node writes to the database. No MySQL triggers are created.
  - A database under the legacy sqlalchemy-migrate control of older Glance (C(migrate_version) 42 to 45)
    is placed under Alembic control and upgraded.
  - Refuses a downgrade, an unknown revision, and a database at a revision this collection does not know.
options:
  version:
    description:
      - The revision to bring the database to, for example V(rocky_contract02).
      - Default V(heads), the newest expand and contract revisions.
    type: str
    default: heads
extends_documentation_fragment:
  - openstack_ops.glance.glance_db
  - openstack_ops.glance.glance_db.LOCK
  - openstack_ops.glance.glance_db.LOCK_DATABASE
  - openstack_ops.glance.glance_db.SCHEMA_CHANGE
attributes:
  check_mode:
    support: full
    description: Returns the plan (revisions and data migrations with their rows) and writes nothing.
  diff_mode:
    support: full
    description: Returns the database version before and after.
  idempotent:
    support: full
    description: A database already at the target reports no change and is not written to.
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Create or upgrade the Glance database from glance-api.conf
  openstack_ops.glance.glance_db_sync:
    config_file: /etc/glance/glance-api.conf
    config_dir: /etc/glance/glance-api.conf.d

- name: Sync an embedded SQLite database
  openstack_ops.glance.glance_db_sync:
    connection: sqlite:////var/lib/glance/glance.sqlite

- name: Stop at a given release, offline
  openstack_ops.glance.glance_db_sync:
    connection: "mysql+pymysql://glance:{{ glance_db_password }}@db.example.org/glance"
    version: rocky_contract02
"""

RETURN = r"""
msg:
  description:
    - >-
      What the run did, in C(glance-manage db sync)'s words: V(Database is synced successfully.), V(Database is up to date. No migrations needed.);
      with O(version), V(Upgraded database to: VERSION, current revision(s): ROWS) as C(glance-manage db upgrade --version) says.
    - In check mode, what it would do (revisions and rows); the same words as above when there is nothing to do.
  returned: always
  type: str
  sample: "Database is synced successfully."
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
  sample: {"phase": "sync", "revisions": ["liberty", "mitaka01"], "data_migrations": [{"name": "ocata_migrate01_community_images", "rows": 120}]}
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
    - Each data migration, as in M(openstack_ops.glance.glance_db_migrate)'s result.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import PHASE_OPTIONS, GlanceDbModule


class GlanceDbSync(GlanceDbModule):
    run_options = PHASE_OPTIONS
    settles_directly = True
    argument_spec = dict(version=dict(type="str", default="heads"))

    def run(self):
        self.run_phase("sync", version=self.params["version"])


def main():
    GlanceDbSync()()


if __name__ == "__main__":
    main()
