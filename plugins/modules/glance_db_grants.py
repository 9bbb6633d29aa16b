#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_grants
short_description: Give the Glance database user what the collection needs beyond Glance's own grant
version_added: 1.0.0
description:
  - On MySQL/MariaDB, checks what the Glance database user (the one of O(connection) or O(config_file)) has, and
    through O(admin_connection), an admin account on the same server, gives it what the collection needs beyond
    the C(ALL PRIVILEGES ON glance.*) that kolla-ansible and openstack-ansible grant. See C(docs/database-grants.md).
  - For good, the migration lock's lease (a MariaDB Galera cluster's, where C(GET_LOCK) holds on one node only),
    that is C(CREATE DATABASE IF NOT EXISTS) O(galera_lock_database) and
    C(GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON) it. With O(admin_connection) this is done on any MySQL server,
    so that it is there once the server is a Galera node; without one it is needed, and missing it refused, on
    Galera only.
  - For a run that creates or drops triggers (O(log_bin_trust_function_creators=true)), C(GRANT TRIGGER) on the
    Glance database where missing, and where binary logging is on (always on Galera) and the user lacks C(SUPER),
    C(SET GLOBAL log_bin_trust_function_creators = 1) on this server (node); without it the user's
    C(CREATE TRIGGER) and C(DROP TRIGGER) fail with error 1419. Expand creates triggers (Ocata's, a shadow
    copy's); Ocata's contract revision drops Glance's, in C(glance_db_contract) and in C(glance_db_sync) alike.
  - RV(log_bin_trust_function_creators.before) is the value found; a second call with
    O(log_bin_trust_function_creators) set to it puts it back.
  - Without O(admin_connection), fails when anything is needed, with one message naming the exact C(GRANT) and
    C(SET GLOBAL) statements an admin must run, before anything changes.
  - O(admin_connection) must reach the same server (the same Galera node) as the Glance connection, since a global
    variable holds on one node only. It is refused otherwise.
  - On PostgreSQL and SQLite nothing is needed; the module reports so.
  - Passwords never appear in any output.
extends_documentation_fragment:
  - openstack_ops.glance.glance_db
options:
  admin_connection:
    description:
      - SQLAlchemy URL of an account that may C(GRANT) and C(SET GLOBAL) on the Glance database's server, for
        example V(mysql+pymysql://root:PASSWORD@db1.example.org/) (kolla-ansible's C(root) through a Galera node's
        own address, openstack-ansible's C(admin)). Its database part, if any, is not used.
      - Unset, the module only checks, and fails naming the statements when something is needed.
    type: str
  log_bin_trust_function_creators:
    description:
      - V(true), a run that creates or drops triggers (C(glance_db_sync), C(glance_db_expand), C(glance_db_contract)
        with revisions to apply) is about to start, so make sure the Glance user may (C(TRIGGER), and
        C(log_bin_trust_function_creators=1) where binary logging is on and the user lacks C(SUPER)). Where nothing
        is needed, nothing changes.
      - V(false), set the global variable to 0 (the run is over, and it was 0 before).
      - Unset, the variable is left alone.
    type: bool
  galera_lock_database:
    description:
      - The database of the migration lock's lease on Galera, as the writing modules' O(galera_lock_database).
    type: str
    default: glance_migration_lock
attributes:
  check_mode:
    support: full
    description: Reports the statements it would run (RV(statements)) and changes nothing.
  diff_mode:
    support: none
    description: RV(statements) says what changes.
  idempotent:
    support: full
    description: A grant that is there is not given again; the variable is set only when it differs.
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Give the Glance user the migration lock's grant, once
  openstack_ops.glance.glance_db_grants:
    connection: "mysql+pymysql://glance:{{ glance_database_password }}@db1.example.org/glance"
    admin_connection: "mysql+pymysql://root:{{ database_password }}@db1.example.org/"

- name: Let the expand create its triggers, for this run only
  block:
    - name: Set log_bin_trust_function_creators on the node the run writes through
      openstack_ops.glance.glance_db_grants:
        config_file: /etc/glance/glance-api.conf
        admin_connection: "{{ glance_db_admin_url }}"
        log_bin_trust_function_creators: true
      register: glance_trust

    - name: Expand the database
      openstack_ops.glance.glance_db_expand:
        config_file: /etc/glance/glance-api.conf
  always:
    - name: Put back the value found
      openstack_ops.glance.glance_db_grants:
        config_file: /etc/glance/glance-api.conf
        admin_connection: "{{ glance_db_admin_url }}"
        log_bin_trust_function_creators: "{{ glance_trust.log_bin_trust_function_creators.before }}"
      when: glance_trust.log_bin_trust_function_creators.changed | default(false)
"""

RETURN = r"""
statements:
  description: The statements run as the admin (in check mode, that would be run), in order.
  returned: always
  type: list
  elements: str
  sample: ["CREATE DATABASE IF NOT EXISTS `glance_migration_lock` CHARACTER SET utf8mb4",
           "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `glance_migration_lock`.* TO 'glance'@'%'"]
log_bin_trust_function_creators:
  description: The global variable on this server (node).
  returned: always
  type: dict
  contains:
    before:
      description: The value found; null on PostgreSQL and SQLite.
      type: bool
    after:
      description: The value the module leaves (in check mode, would leave).
      type: bool
    changed:
      description: Whether the module sets it (in check mode, would set it).
      type: bool
user:
  description: What the Glance database user has on this server; null on PostgreSQL and SQLite.
  returned: always
  type: dict
  contains:
    account:
      description: The account, as C(GRANT) names it.
      type: str
      sample: "'glance'@'%'"
    server:
      description: The server (C(@@hostname:@@port (@@datadir))) both connections reach.
      type: str
    galera:
      description: Whether the server is a Galera node.
      type: bool
    binary_logging:
      description: Whether C(CREATE TRIGGER) is checked as under binary logging (C(log_bin), or Galera).
      type: bool
    super_privilege:
      description: Whether the user has C(SUPER) (then the variable is not needed).
      type: bool
    trigger_privilege:
      description: Whether the user has C(TRIGGER) on the Glance database.
      type: bool
    lease_privileges_missing:
      description: The lease's privileges on O(galera_lock_database) the user lacks (before the module ran).
      type: list
      elements: str
msg:
  description: What was done, or that nothing was needed.
  returned: always
  type: str
"""

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import grants
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import GlanceDbModule


class GlanceDbGrants(GlanceDbModule):
    run_options = ("galera_lock_database",)  # where the lease is: no lock is taken
    argument_spec = dict(
        admin_connection=dict(type="str", no_log=True),
        log_bin_trust_function_creators=dict(type="bool"),
    )

    def __init__(self):
        super(GlanceDbGrants, self).__init__()
        self.redact.add_url(self.params["admin_connection"])  # from the start, as the Glance URL's

    def run(self):
        admin = self.params["admin_connection"]
        result = grants.apply(self.engine, grants.admin_url(admin, self.redact) if admin else None,
                              self.params["galera_lock_database"],
                              trust=self.params["log_bin_trust_function_creators"],
                              check_mode=self.ansible.check_mode)
        self.exit(result)


def main():
    GlanceDbGrants()()


if __name__ == "__main__":
    main()
