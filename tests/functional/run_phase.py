"""Run one phase in its own process: python run_phase.py URL PHASE [JSON_ARGS] [START_AT].

Prints {"changed": ..., "error": ...} as JSON. Used to race several runs at
once and to kill a run part-way.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".build" / "collections"))

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import (  # noqa: E402
    connection, phases,
)
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import (  # noqa: E402
    GlanceDbError,
)


def main(url, phase, args="{}", start_at=None):
    redactor = connection.Redactor()
    engine = connection.create_engine(connection.resolve_url(url, redactor=redactor), redactor)
    if start_at:
        time.sleep(max(0.0, float(start_at) - time.time()))
    try:
        outcome = phases.run(engine, phase, **json.loads(args))
        print(json.dumps({"changed": outcome.changed, "revisions": outcome.applied_revisions,
                          "migrated": outcome.migrated, "error": None}))
    except GlanceDbError as exc:
        print(json.dumps({"changed": False, "error": redactor(str(exc))}))


if __name__ == "__main__":
    main(*sys.argv[1:])
