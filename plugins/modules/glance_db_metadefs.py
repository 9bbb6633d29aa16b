#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_metadefs
short_description: Load, unload or export Glance's metadata definitions
version_added: 1.0.0
description:
  - Does what C(glance-manage db load_metadefs), C(unload_metadefs) and C(export_metadefs) do, with the same rows
    in the C(metadef_*) tables, and writes only what differs.
  - V(present) loads the JSON files of O(path) as C(load_metadefs) does. Without O(merge), a namespace already in the
    database is left as it is; with O(merge), the missing objects, properties, tags and resource type associations
    of such a namespace are added; O(merge) with O(prefer_new) also updates the existing ones from the files;
    O(merge) with O(overwrite) makes the namespace exactly what the files say (entries not in the files go).
    A resource type that does not exist yet is created, protected. Namespaces that are not in the files are kept.
  - V(absent) deletes every metadata definition, as C(unload_metadefs) does.
  - V(exported) writes one C(<namespace>.json) per namespace into O(path), in the layout C(load_metadefs) reads.
  - Every file is read and checked before anything is written; a load or unload is one transaction under the
    migration lock, so nothing is ever half loaded.
  - >-
    Meanwhile it publishes its progress, one step per kind of row (C(metadefs: create 4 of 5, properties: 80/134)),
    which M(openstack_ops.glance.glance_db_facts) shows in C(run.progress) (C(docs/progress.md)).
  - Where C(glance-manage) logs and goes on, this module refuses and writes nothing, naming the file - a path that
    does not exist, a directory without C(.json) files, a malformed file, or a file without a namespace name.
  - Needs the metadef tables; a database that does not have them yet is refused (run M(openstack_ops.glance.glance_db_sync)).
options:
  state:
    description:
      - V(present) loads the files, V(absent) deletes all metadata definitions, V(exported) writes them to files.
    type: str
    choices: [present, absent, exported]
    default: present
  path:
    description:
      - V(present) - the directory of metadefs files (its C(*.json) files are read, in name order) or one file.
        Default V(/etc/glance/metadefs), where Glance's packages put them.
      - V(exported) - the directory to write C(<namespace>.json) files into, created when missing. Required.
      - Read and written on the host that runs the module.
    type: path
  merge:
    description: Also load into namespaces that already exist (C(--merge)).
    type: bool
    default: false
  prefer_new:
    description:
      - With O(merge), update existing entries from the files (C(--prefer_new)). Glance's release notes advise
        O(merge) and O(prefer_new) together after an upgrade.
    type: bool
    default: false
  overwrite:
    description:
      - With O(merge), replace each namespace in the files with the files' version (C(--overwrite)).
      - At most one of O(prefer_new) and O(overwrite); either without O(merge) is refused, as Glance refuses it.
    type: bool
    default: false
  force:
    description:
      - With V(exported), overwrite files whose contents differ. Without it such a file is refused and nothing is
        written.
    type: bool
    default: false
extends_documentation_fragment:
  - openstack_ops.glance.glance_db
  - openstack_ops.glance.glance_db.LOCK
  - openstack_ops.glance.glance_db.LOCK_DATABASE
attributes:
  check_mode:
    support: full
    description: Returns what would be created, updated or deleted (or which files written) and writes nothing.
  diff_mode:
    support: full
    description: Returns the affected entries before and after.
  idempotent:
    support: full
    description: A second load of the same files, or an export to the same files, reports no change and writes nothing.
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Load Glance's metadata definitions (kolla-ansible's bootstrap, openstack-ansible's db tasks)
  openstack_ops.glance.glance_db_metadefs:
    config_file: /etc/glance/glance-api.conf

- name: After an upgrade, take the new release's definitions, as Glance's release notes advise
  openstack_ops.glance.glance_db_metadefs:
    config_file: /etc/glance/glance-api.conf
    path: /etc/glance/metadefs
    merge: true
    prefer_new: true

- name: Export the definitions to files
  openstack_ops.glance.glance_db_metadefs:
    config_file: /etc/glance/glance-api.conf
    state: exported
    path: /var/backups/glance-metadefs

- name: Unload every definition
  openstack_ops.glance.glance_db_metadefs:
    config_file: /etc/glance/glance-api.conf
    state: absent
"""

RETURN = r"""
changes:
  description:
    - With V(present) and V(absent), what the run creates, updates and deletes (in check mode, would), by natural key.
    - Each of C(created), C(updated), C(deleted) holds only the kinds with entries - C(namespaces) and
      C(resource_types) (names), C(resource_type_associations) (C(namespace), C(resource_type)),
      C(properties), C(objects), C(tags) (C(namespace), C(name)).
  returned: when state is present or absent
  type: dict
  sample:
    created:
      namespaces: ["OS::Compute::Libvirt"]
      properties: [{"namespace": "OS::Compute::Libvirt", "name": "hw_boot_menu"}]
      resource_type_associations: [{"namespace": "OS::Compute::Libvirt", "resource_type": "OS::Glance::Image"}]
    updated: {}
    deleted: {}
counts:
  description: The number of entries per kind in the database after the run (in check mode, as it would be).
  returned: when state is present or absent
  type: dict
  sample: {"namespaces": 32, "resource_types": 11, "resource_type_associations": 61, "properties": 134, "objects": 23, "tags": 0}
files:
  description: With V(exported), each file and whether it is (or would be) V(created), V(updated) or V(unchanged).
  returned: when state is exported
  type: dict
  sample: {"/var/backups/glance-metadefs/OS::Compute::Libvirt.json": "created"}
"""

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import metadefs
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import GlanceDbModule
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.options import LOCK_OPTIONS


class GlanceDbMetadefs(GlanceDbModule):
    run_options = LOCK_OPTIONS
    settles_directly = True  # a load with nothing to do is read with the driver alone
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent", "exported"], default="present"),
        path=dict(type="path"),
        merge=dict(type="bool", default=False),
        prefer_new=dict(type="bool", default=False),
        overwrite=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
    )
    module_kwargs = dict(required_if=[("state", "exported", ["path"])])

    def run(self):
        p, check_mode = self.params, self.ansible.check_mode
        if p["state"] == "exported":
            self.connect()
            files = metadefs.export(self.engine, p["path"], force=p["force"], check_mode=check_mode)
            self.exit(dict(changed=any(what != "unchanged" for what in files.values()), files=files))
        path = p["path"] or metadefs.DEFAULT_PATH
        modes = dict(merge=p["merge"], prefer_new=p["prefer_new"], overwrite=p["overwrite"])
        result = metadefs.settled_direct(self.raw_url, path, **modes) if p["state"] == "present" else None
        if result is None:
            self.connect()
            if p["state"] == "present":
                result = metadefs.load(self.engine, path, self.options, check_mode=check_mode, **modes)
            else:
                result = metadefs.unload(self.engine, self.options, check_mode=check_mode)
        for warning in result.warnings:
            self.ansible.warn(self.redact(warning))
        out = dict(changed=result.changed, changes=metadefs.change_report(result.changes),
                   counts=dict((kind, len(entries)) for kind, entries in result.after.items()))
        if self.ansible._diff:
            out["diff"] = dict(before=metadefs.diff_text(result.before, result.changes, "before"),
                               after=metadefs.diff_text(result.after, result.changes, "after"))
        self.exit(out)


def main():
    GlanceDbMetadefs()()


if __name__ == "__main__":
    main()
