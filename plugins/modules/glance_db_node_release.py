#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_node_release
short_description: Report the OpenStack release a Glance API node runs
version_added: 1.0.0
description:
  - Runs on a Glance API node and says which OpenStack release it runs, from the first source it has, in this order.
  - O(command), for example the installed C(glance) package's version; its last line of output is a Glance version
    (its major version names the release, C(33.0.0) is V(2026.2)) or a release name (V(2024.1), V(caracal), V(zed)).
    A command that fails or prints neither names no release.
  - Else the JSON marker file O(marker_file) (key C(release)), else O(release).
  - Never fails because the node cannot say what it runs; it returns RV(release=null) and RV(error) instead, so
    the caller can count the node as behind.
  - Needs nothing but Python on the node, not the database libraries.
attributes:
  check_mode:
    support: full
    description: Reads only; the command runs in check mode too, it must not change anything.
  diff_mode:
    support: none
    description: Nothing changes.
  idempotent:
    support: full
    description: Reads only.
options:
  command:
    description: The argv of a command that prints the node's Glance version or release. Empty to skip it.
    type: list
    elements: str
    default: []
  marker_file:
    description: A release marker, as the role's C(node) entry point writes it, read when O(command) is empty.
    type: path
  release:
    description: The release to report when neither O(command) nor O(marker_file) is there, for example from the inventory.
    type: str
  minimum:
    description: Also say whether the node runs this release or a later one (RV(at_least)).
    type: str
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Ask the node which Glance it runs
  openstack_ops.glance.glance_db_node_release:
    command: [python3, -c, "import importlib.metadata as m; print(m.version('glance'))"]
    minimum: "2024.1"
  register: node_release

- name: In kolla-ansible, ask the API container
  openstack_ops.glance.glance_db_node_release:
    command: [docker, exec, glance_api, python3, -c, "import importlib.metadata as m; print(m.version('glance'))"]
"""

RETURN = r"""
release:
  description: The node's release (V(ocata) ... V(2024.1) ...), C(newer than) the newest known one, or null when unknown.
  returned: always
  type: str
  sample: "2026.2"
source:
  description: Where the release came from, V(command), V(marker), V(inventory) or V(none).
  returned: always
  type: str
  sample: command
output:
  description: The end of what O(command) printed.
  returned: always
  type: str
  sample: "33.0.0"
error:
  description: Why no release is known, or null.
  returned: always
  type: str
  sample: "python3 exited 1 (importlib.metadata.PackageNotFoundError: No package metadata was found for glance)"
at_least:
  description: Whether RV(release) is O(minimum) or later; false when either is unknown.
  returned: when O(minimum) is given
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import releases


def main():
    module = AnsibleModule(
        argument_spec=dict(
            command=dict(type="list", elements="str", default=[]),
            marker_file=dict(type="path"),
            release=dict(type="str"),
            minimum=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["minimum"] is not None and releases.normalize(params["minimum"]) is None:
        module.fail_json(msg="minimum %r is no release this collection knows (known: %s)."
                         % (params["minimum"], ", ".join(releases.ORDER)))
    check = marker = None
    if params["command"]:
        try:
            check = module.run_command(params["command"], handle_exceptions=False)
        except OSError as exc:
            check = (None, "", str(exc))
    elif params["marker_file"]:
        try:
            with open(params["marker_file"]) as handle:
                marker = handle.read()
        except OSError:
            marker = None
    result = releases.report(params["command"], check, marker, params["release"], params["minimum"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
