"""Make the repository importable as ansible_collections.openstack_ops.glance.

The repository root is the collection root, but Python (and ansible-playbook)
find a collection only below a directory laid out as
ansible_collections/<namespace>/<name>. A symlink in .build/collections gives the
repository that name without copying it, so edits are seen at once.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

if REPO.parent.parent.name == 'ansible_collections':
    # Already laid out so (ansible-test units runs in such a copy, and points
    # ANSIBLE_COLLECTIONS_PATH there): a second path would split the collection.
    COLLECTIONS_ROOT = REPO.parent.parent.parent
else:
    COLLECTIONS_ROOT = REPO / '.build' / 'collections'
    # scripts/collection-link makes the link (and is the one place that does).
    subprocess.run(['bash', str(REPO / 'scripts' / 'collection-link')], check=True, stdout=subprocess.DEVNULL)
    sys.path.insert(0, str(COLLECTIONS_ROOT))

# Tests that run ansible-playbook resolve openstack_ops.glance to this
# repository, and run modules with this interpreter (it has SQLAlchemy & co.).
os.environ['ANSIBLE_COLLECTIONS_PATH'] = str(COLLECTIONS_ROOT)
os.environ.setdefault('ANSIBLE_PYTHON_INTERPRETER', sys.executable)
