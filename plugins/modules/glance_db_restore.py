#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_restore
short_description: Restore a Glance database from a dump taken by glance_db_backup
version_added: 1.0.0
description:
  - Replaces the Glance database the connection names with a dump that M(openstack_ops.glance.glance_db_backup) took,
    the way back after an upgrade (Glance supports no downgrade).
  - Before touching anything, checks the dump against its record (C(<dump>.json), written by
    M(openstack_ops.glance.glance_db_backup) beside it) and refuses a size or sha256 that differs, a dump of another
    engine, or a dump without its record.
  - Refuses a database that holds tables unless O(force=true), saying what it would replace (revisions and rows per
    table) by what (the dump's). Every write since the dump is lost, so stop the Glance API first.
  - Under the migration lock, drops every table of the database (a stopped run's leftovers included) and loads the
    dump with the server's own client. MySQL/MariaDB with C(mysql), PostgreSQL with C(pg_restore --single-transaction)
    (after its tables, sequences and enum types are dropped in one transaction), SQLite with Python's backup API.
  - The password reaches the client through C(MYSQL_PWD) or C(PGPASSWORD) only, never on a command line, and never
    appears in any output. The URL's TLS options reach the client as for M(openstack_ops.glance.glance_db_backup).
  - A restore that fails half-way says so and leaves the dump untouched. What the database holds then depends on the
    engine. MySQL/MariaDB, the tables the client loaded until it stopped. PostgreSQL, nothing (the load is one
    transaction, rolled back). SQLite, what it held before. A re-run with O(force=true) completes the restore.
  - Afterwards checks that the database is at the dump's revisions and has its tables.
extends_documentation_fragment:
  - openstack_ops.glance.glance_db
  - openstack_ops.glance.glance_db.LOCK
  - openstack_ops.glance.glance_db.LOCK_DATABASE
options:
  path:
    description:
      - The dump to restore, as M(openstack_ops.glance.glance_db_backup) returned it (RV(dump.path)), on the host that
        runs the module. Its record C(<path>.json) must be beside it.
      - Exactly one of O(path) and O(backup_dir) is required.
    type: path
  backup_dir:
    description:
      - Restore the newest dump in this directory whose record names this database and engine (its C(taken_at)).
    type: path
  force:
    description:
      - Replace a database that holds tables. Without it such a database is refused, naming what it holds.
    type: bool
    default: false
  mysql:
    description: The C(mysql) (or C(mariadb)) client to load a MySQL/MariaDB dump with.
    type: path
    default: mysql
  pg_restore:
    description: The C(pg_restore) program to load a PostgreSQL dump with.
    type: path
    default: pg_restore
attributes:
  check_mode:
    support: full
    description: Checks the dump and reports what would be replaced by what (RV(before) and RV(after)); writes nothing.
  diff_mode:
    support: full
    description: The revisions and rows per table before and after.
  idempotent:
    support: none
    description: Every run restores the dump again (an explicit, confirmed step).
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Show what the restore of the newest dump would replace
  openstack_ops.glance.glance_db_restore:
    config_file: /etc/glance/glance-api.conf
    backup_dir: /var/backups/glance_db
  check_mode: true
  register: glance_restore_plan

- name: Restore it, the Glance API being stopped
  openstack_ops.glance.glance_db_restore:
    config_file: /etc/glance/glance-api.conf
    path: "{{ glance_restore_plan.dump.path }}"
    force: true
"""

RETURN = r"""
msg:
  description: What was (in check mode, would be) replaced by what.
  returned: always
  type: str
dump:
  description: The dump restored, as its record describes it.
  returned: always
  type: dict
  contains:
    path:
      description: The dump.
      type: str
      sample: /var/backups/glance_db/glance-glance-20261125T101500Z.sql
    sha256:
      description: Its SHA-256 checksum, checked before anything changed.
      type: str
    size:
      description: Its size in bytes, checked before anything changed.
      type: int
    engine:
      description: V(mysql), V(postgresql) or V(sqlite).
      type: str
    database:
      description: The database it was taken from.
      type: str
    tool:
      description: What took it.
      type: str
    taken_at:
      description: When the dump started (UTC).
      type: str
      sample: "2026-11-25T10:15:00Z"
    revisions:
      description: The database's revisions (C(alembic_version)) when the dump was taken.
      type: list
      elements: str
    rows:
      description: Rows per table, read just after the dump (with the API writing meanwhile the dump may hold a few less).
      type: dict
before:
  description: What the database held before the restore.
  returned: always
  type: dict
  contains:
    revisions:
      description: Its revisions.
      type: list
      elements: str
    rows:
      description: Rows per table, every table (a stopped run's leftovers included).
      type: dict
    size:
      description: Bytes it took (MySQL tables' data and indexes, PostgreSQL database, SQLite file).
      type: int
after:
  description: What the database holds after the restore; in check mode, the dump's record.
  returned: always
  type: dict
  contains:
    revisions:
      description: Its revisions.
      type: list
      elements: str
    rows:
      description: Rows per table.
      type: dict
    size:
      description: Bytes it takes (not in check mode).
      type: int
seconds:
  description: How long the restore took (clearing, loading and reading the result), under the migration lock.
  returned: when not in check mode
  type: float
"""

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import restore
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import GlanceDbModule
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.options import LOCK_OPTIONS


class GlanceDbRestore(GlanceDbModule):
    run_options = LOCK_OPTIONS
    argument_spec = dict(
        path=dict(type="path"),
        backup_dir=dict(type="path"),
        force=dict(type="bool", default=False),
        mysql=dict(type="path", default="mysql"),
        pg_restore=dict(type="path", default="pg_restore"),
    )

    def run(self):
        result = restore.run(self.engine, self._run_tool, path=self.params["path"],
                             backup_dir=self.params["backup_dir"], force=self.params["force"],
                             check_mode=self.ansible.check_mode, options=self.options,
                             mysql=self.params["mysql"], pg_restore=self.params["pg_restore"])
        if self.ansible._diff:
            result["diff"] = dict(before=restore.diff_text(result["before"]),
                                  after=restore.diff_text(result["after"]))
        self.exit(result)

    def _run_tool(self, argv, environ_update, pass_fds):
        return self.ansible.run_command(argv, environ_update=environ_update, pass_fds=pass_fds)


def main():
    GlanceDbRestore()()


if __name__ == "__main__":
    main()
