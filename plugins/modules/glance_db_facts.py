#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_facts
short_description: Report the version and upgrade state of a Glance database
version_added: 1.0.0
description:
  - Reads the Glance database and reports its revisions, the current and target head of the expand and contract
    branches, pending data migrations with their rows, and the next step of a rolling upgrade.
  - Never writes, not even to rewrite legacy C(alembic_version) rows as C(glance-manage) does.
  - Works ad hoc, for example C(ansible dbhost -m openstack_ops.glance.glance_db_facts -a config_file=/etc/glance/glance-api.conf).
options:
  progress_only:
    description:
      - Read only the step a run publishes (C(progress) of RV(glance_db.run)), and return RV(glance_db) with C(run)
        holding only C(progress); with the database driver alone where the URL allows (no SQLAlchemy, no row
        counts), so it is cheap enough to poll while a long run lasts. M(openstack_ops.glance.glance_db_wait)
        uses it.
    type: bool
    default: false
extends_documentation_fragment:
  - openstack_ops.glance.glance_db
  - openstack_ops.glance.glance_db.LOCK_DATABASE
attributes:
  check_mode:
    support: full
    description: Reads only, in check mode or not.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: Reads only.
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Read the Glance database state
  openstack_ops.glance.glance_db_facts:
    config_file: /etc/glance/glance-api.conf
  register: glance

- name: Stop when the database needs more than this play does
  ansible.builtin.assert:
    that: glance.glance_db.next_step in ['none', 'expand']
"""

RETURN = r"""
glance_db:
  description: The state of the Glance database.
  returned: always
  type: dict
  contains:
    revisions:
      description: The rows of C(alembic_version) as C(glance-manage db version) prints them (legacy rows read as Glance reads them).
      type: list
      elements: str
      sample: ["2024_1_contract01"]
    releases:
      description: The OpenStack release of each revision in RV(glance_db.revisions), as the revision's id names it.
      type: dict
      sample: {"2024_1_contract01": "2024.1"}
    connection_source:
      description:
        - Where the database URL came from, V(connection) (the option) or the path of the config file that set
          C([database] connection).
      type: str
      sample: /etc/glance/glance-api.conf
    alembic_version_rows:
      description: The rows exactly as stored.
      type: list
      elements: str
    expand:
      description:
        - Current revision (V(null) when none) and target head of the expand branch, whether it is at the head,
          and the OpenStack release of the current revision and of the head (C(head_release)).
      type: dict
      sample: {"current": "2024_1_expand01", "head": "2024_1_expand01", "at_head": true, "release": "2024.1",
               "head_release": "2024.1"}
    contract:
      description: The same for the contract branch.
      type: dict
    pending_data_migrations:
      description: Data migrations with rows still to move, while their release is between expand and contract.
      type: list
      elements: dict
      sample: [{"name": "ocata_migrate01_community_images", "rows": 1200}]
    next_step:
      description:
        - V(none), V(expand), V(migrate) or V(contract), as C(glance-manage db check) would answer (exit 0, 3, 4, 5);
          V(unknown) when the database is at a revision this collection does not know, or is not a Glance database.
      type: str
    check_exit_code:
      description:
        - The exit code C(glance-manage db check) would give for this state (0, 3, 4 or 5); on PostgreSQL real Glance
          refuses C(db check) itself (exit 1), but the state is reported the same way.
      type: int
    up_to_date:
      description: True when the contract branch is at its head and no stopped run's leftovers stand (RV(glance_db.run)).
      type: bool
    known:
      description:
        - False when the database holds revisions this collection does not know, is not a Glance database, or its
          C(alembic_version) is inconsistent (RV(glance_db.inconsistent)); every writing module refuses it then.
      type: bool
    inconsistent:
      description:
        - True when the rows of C(alembic_version) are not what Glance's upgrades leave for the revisions they name
          (e.g. a head beside an older revision of its branch), or the schema contradicts them (a table or column
          the newest revision of a branch added is missing, or one it dropped is there).
      type: bool
    run:
      description:
        - What a stopped run left on MySQL/MariaDB, C(leftovers) (each with C(kind) V(table) or V(trigger), C(name) and
          C(table)), and C(msg), naming the module that clears them (V(null) when none). Glance's writes go on while
          they stand; M(openstack_ops.glance.glance_db_purge) and M(openstack_ops.glance.glance_db_metadefs) refuse.
        - C(progress), the step a writing run publishes (V(null) when none; never on PostgreSQL; on MySQL/MariaDB read,
          as the Galera C(lease), in O(galera_lock_database)), see C(docs/progress.md),
          with C(phase), C(step) (V(revision), V(copy), V(data migration)), C(name), C(index) of C(count), C(table),
          C(stage), C(rows_done) of C(rows_total), C(percent), C(rows_per_second), C(eta_seconds) (once a few percent
          are done), C(throttled) (why the run waits, or V(null)), C(host), C(pid), C(started_at), C(updated_at),
          C(finished) (the steps that moved rows, with their C(seconds)), C(line) (all of it in one line), and
          C(state), V(running) while its run holds the migration lock, else V(stale) (the run stopped, and C(msg) names
          the module to run).
        - C(msg) says what runs, or what a stopped run left.
      type: dict
      sample: {"leftovers": [{"kind": "table", "name": "_glance_new_images", "table": "_glance_new_images"}],
               "msg": "A stopped run left table _glance_new_images. Run glance_db_migrate: it clears them under the
                       migration lock before anything else (so do glance_db_sync, _expand, _migrate and _contract)."}
    unknown_revisions:
      description: Rows of C(alembic_version) this collection does not know.
      type: list
      elements: str
    empty:
      description: True when the database has no tables.
      type: bool
    legacy_migrate_version:
      description: The sqlalchemy-migrate version of older Glance, when present.
      type: int
    engine:
      description: V(mysql), V(postgresql) or V(sqlite).
      type: str
    server_version:
      description: The database server version.
      type: str
    database:
      description: The database name (the file path for SQLite).
      type: str
    triggers:
      description:
        - On MySQL/MariaDB, whether this user can create the triggers an online expand needs
          (V(binary_logging), V(log_bin_trust_function_creators), V(trigger_privilege), V(super_privilege), V(can_create)).
          V(null) on other engines.
      type: dict
    galera:
      description:
        - On a MariaDB Galera node, this node's view of its cluster (read with C(wsrep_sync_wait), so the
          state reported is the cluster's latest); V(null) on any other server. Writing phases refuse a node
          whose RV(glance_db.galera.writable) is false. See C(docs/galera.md).
      type: dict
      contains:
        cluster_size:
          description: Nodes in this node's cluster component (C(wsrep_cluster_size)).
          type: int
        cluster_status:
          description: C(Primary) when this node's component has quorum (C(wsrep_cluster_status)), else C(Non-primary) or C(Disconnected).
          type: str
        cluster_state_uuid:
          description: The cluster's state UUID (C(wsrep_cluster_state_uuid)); the same on every node of one cluster.
          type: str
        local_state:
          description: This node's state (C(wsrep_local_state_comment)), e.g. C(Synced), C(Donor/Desynced), C(Joining).
          type: str
        ready:
          description: Whether the node accepts queries (C(wsrep_ready)).
          type: bool
        writable:
          description: Whether the writing phases run through this node (C(Primary) and C(Synced)).
          type: bool
        node_name:
          description: This node's C(wsrep_node_name).
          type: str
        incoming_addresses:
          description: The SQL addresses of the cluster's nodes as they announce them (C(wsrep_incoming_addresses)).
          type: list
          elements: str
        osu_method:
          description: How schema changes replicate in this session (C(wsrep_OSU_method)), C(TOI) (every node at once) or C(RSU).
          type: str
        flow_control_paused:
          description: Fraction of time since the last C(FLUSH STATUS) that replication was paused by flow control (C(wsrep_flow_control_paused)), 0.0 to 1.0.
          type: float
        sync_wait:
          description: The session's C(wsrep_sync_wait) the state was read with (bit 1 set by the modules, so reads wait for the cluster).
          type: int
"""

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import direct
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import state as db_state
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import GlanceDbModule
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.options import LOCK_DATABASE_OPTIONS


class GlanceDbFacts(GlanceDbModule):
    reads_directly = True
    run_options = LOCK_DATABASE_OPTIONS  # where a run's lease and progress are read

    argument_spec = dict(progress_only=dict(type="bool", default=False))

    def run(self):
        if self.params["progress_only"]:
            try:
                progress = db_state.read_progress_direct(self.raw_url, self.options.galera_lock_database)
            except direct.NeedsSqlAlchemy:
                progress = self.read_state().progress
            self.exit(dict(changed=False, glance_db={"run": {"progress": progress}}))
        self.exit(dict(changed=False, glance_db=self.read_state().as_facts()))


def main():
    GlanceDbFacts()()


if __name__ == "__main__":
    main()
