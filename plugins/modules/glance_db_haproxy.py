#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: glance_db_haproxy
short_description: Take a Glance API server out of an HAProxy backend and put it back
version_added: 1.0.0
description:
  - Talks to HAProxy's runtime API through its unix C(stats socket), which must be C(level admin). Runs on the load
    balancer host; needs nothing but Python there (no C(socat)).
  - O(state=drained) sends no new request to the server (C(set server BACKEND/SERVER state drain)), waits up to
    O(timeout) seconds until it has no connection left (C(scur) and C(qcur) of C(show stat) are 0), then puts it in
    maintenance, so it stays out while its node restarts.
  - O(state=ready) leaves maintenance still drained and marked down (C(health down), so a check from before the
    restart does not count), waits up to O(timeout) seconds until HAProxy's own health check of the server passes
    again, then lets it take requests (C(state ready)). When the check does not pass the server stays
    drained and the module fails.
  - The server needs a health check (C(check) on its C(server) line).
attributes:
  check_mode:
    support: full
    description: Reads the server's state and changes nothing.
  diff_mode:
    support: none
    description: No diff.
  idempotent:
    support: partial
    description: Sets the state every time; a server already in that state stays in it.
options:
  socket:
    description: The path of HAProxy's admin stats socket on the host the module runs on.
    type: path
    required: true
  backend:
    description: The backend (C(pxname)) of the Glance API servers.
    type: str
    required: true
  server:
    description: The server name (C(svname)) of this node in O(backend).
    type: str
    required: true
  state:
    description: V(drained) before the node is upgraded, V(ready) after.
    type: str
    choices: [drained, ready]
    required: true
  timeout:
    description:
      - Seconds to wait for the server's connections to finish (V(drained); the module goes on after it, saying so)
        or for its health check to pass (V(ready); the module fails after it).
    type: float
    default: 60
author:
  - openstack_ops maintainers (@openstack-ops)
"""

EXAMPLES = r"""
- name: Drain this node in HAProxy
  openstack_ops.glance.glance_db_haproxy:
    socket: /run/haproxy/admin.sock
    backend: glance_api
    server: "{{ inventory_hostname }}"
    state: drained
  delegate_to: lb1

- name: Put it back once HAProxy's health check passes
  openstack_ops.glance.glance_db_haproxy:
    socket: /run/haproxy/admin.sock
    backend: glance_api
    server: "{{ inventory_hostname }}"
    state: ready
  delegate_to: lb1
"""

RETURN = r"""
status:
  description: The server's C(status) in C(show stat) afterwards (V(MAINT) when drained, V(UP) when ready).
  returned: always
  type: str
  sample: MAINT
idle:
  description: Whether the server had no connection left before maintenance (V(drained)).
  returned: when O(state=drained)
  type: bool
  sample: true
connections_left:
  description: Connections still open when the wait ended (V(drained)).
  returned: when O(state=drained)
  type: int
  sample: 0
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 0.4
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import haproxy


def main():
    module = AnsibleModule(
        argument_spec=dict(
            socket=dict(type="path", required=True),
            backend=dict(type="str", required=True),
            server=dict(type="str", required=True),
            state=dict(type="str", choices=["drained", "ready"], required=True),
            timeout=dict(type="float", default=60),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        if module.check_mode:
            row = haproxy.server_stat(p["socket"], p["backend"], p["server"])
            module.exit_json(changed=False, status=row.get("status"), waited=0.0)
        act = haproxy.drain if p["state"] == "drained" else haproxy.ready
        result = act(p["socket"], p["backend"], p["server"], p["timeout"])
    except haproxy.HaproxyError as exc:
        module.fail_json(msg=str(exc))
    if result.get("idle") is False:
        module.warn("%s/%s still had %d connection(s) after %s s; it is in maintenance now."
                    % (p["backend"], p["server"], result["connections_left"], p["timeout"]))
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
