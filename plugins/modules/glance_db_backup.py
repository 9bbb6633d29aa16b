#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_backup
short_description: Take a consistent dump of a Glance database before it is upgraded
version_added: 1.0.0
description:
  - Dumps the Glance database to a new file in O(dest_dir) and reports its path, size and sha256.
  - MySQL/MariaDB with C(mysqldump --single-transaction) (a consistent snapshot that does not block the API),
    PostgreSQL with C(pg_dump) in custom format, SQLite with its online backup API.
  - The password reaches the dump tool through C(MYSQL_PWD) or C(PGPASSWORD) only, never on a command line,
    and never appears in any output.
  - The TLS options of the connection URL reach the dump tool. For C(mysqldump), PyMySQL's C(ssl_ca), C(ssl_capath),
    C(ssl_cert), C(ssl_key) and C(ssl_cipher) become its C(--ssl-*) options, C(ssl_disabled=true) C(--skip-ssl), and
    the server's certificate and name are checked (C(--ssl-verify-server-cert)) when PyMySQL checks them too
    (a CA given, unless C(ssl_check_hostname=false); or C(ssl_verify_cert) or C(ssl_verify_identity) true).
    For C(pg_dump), C(sslmode), C(sslrootcert), C(sslcert), C(sslkey) and C(sslcrl) become libpq's C(PGSSL*) variables.
  - The dump is written into a new file C(<name>.partial), mode 0600, created by the module itself, never through a
    symbolic link and never over a file it did not create (such a name is refused), and gets its final name,
    again without replacing anything, when complete.
extends_documentation_fragment:
  - openstack_ops.glance.glance_db
options:
  dest_dir:
    description:
      - An existing directory for the dump, on the host that runs the module.
      - The file is named C(glance-<database>-<UTC timestamp>.sql) (MySQL), C(.dump) (PostgreSQL) or C(.sqlite).
    type: path
    required: true
  mysqldump:
    description: The C(mysqldump) (or C(mariadb-dump)) program to use.
    type: path
    default: mysqldump
  pg_dump:
    description: The C(pg_dump) program to use.
    type: path
    default: pg_dump
attributes:
  check_mode:
    support: full
    description: Reports the path the dump would have and writes nothing.
  diff_mode:
    support: none
    description: The database does not change.
  idempotent:
    support: none
    description: Every run takes a new dump.
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Back up the Glance database before the upgrade
  openstack_ops.glance.glance_db_backup:
    config_file: /etc/glance/glance-api.conf
    dest_dir: /var/backups/glance_db
  register: glance_backup

- name: Show where it is
  ansible.builtin.debug:
    msg: "{{ glance_backup.backup.path }} ({{ glance_backup.backup.size }} bytes, sha256 {{ glance_backup.backup.sha256 }})"
"""

RETURN = r"""
backup:
  description: The dump. In check mode only RV(backup.path) and RV(backup.engine), as planned.
  returned: always
  type: dict
  contains:
    path:
      description: The file written.
      type: str
      sample: /var/backups/glance_db/glance-glance-20261125T101500Z.sql
    sha256:
      description: Its SHA-256 checksum.
      type: str
    size:
      description: Its size in bytes.
      type: int
    engine:
      description: V(mysql), V(postgresql) or V(sqlite).
      type: str
    database:
      description: The database name (the file path for SQLite).
      type: str
    tool:
      description: What took the dump.
      type: str
      sample: mysqldump
    seconds:
      description: How long the dump took.
      type: float
    manifest:
      description:
        - The dump's record beside it, C(<path>.json) (mode 0600), which M(openstack_ops.glance.glance_db_restore)
          checks before it restores the dump. It holds the other values returned here.
      type: str
    taken_at:
      description: When the dump started (UTC).
      type: str
      sample: "2026-11-25T10:15:00Z"
    revisions:
      description: The database's revisions when it was dumped.
      type: list
      elements: str
    rows:
      description: Rows per table, read just after the dump (with the API writing meanwhile the dump may hold a few less).
      type: dict
"""

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import backup
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import GlanceDbModule


class GlanceDbBackup(GlanceDbModule):
    argument_spec = dict(
        dest_dir=dict(type="path", required=True),
        mysqldump=dict(type="path", default="mysqldump"),
        pg_dump=dict(type="path", default="pg_dump"),
    )

    def run(self):
        url = self.engine.url
        if self.ansible.check_mode:
            self.exit(dict(changed=True, backup=dict(
                path=backup.planned_path(url, self.params["dest_dir"]), engine=url.get_backend_name())))
        result = backup.take(url, self.params["dest_dir"], self._run_tool,
                             mysqldump=self.params["mysqldump"], pg_dump=self.params["pg_dump"])
        self.exit(dict(changed=True, backup=result))

    def _run_tool(self, argv, environ_update, pass_fds):
        return self.ansible.run_command(argv, environ_update=environ_update, pass_fds=pass_fds)


def main():
    GlanceDbBackup()()


if __name__ == "__main__":
    main()
