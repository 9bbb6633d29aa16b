"""Make the repository importable as ansible_collections.openstack_ops.glance.

The repository root is the collection root, but Python (and ansible-playbook)
find a collection only below a directory laid out as
ansible_collections/<namespace>/<name>. A symlink in .build/collections gives the
repository that name without copying it, so edits are seen at once.
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS_ROOT = REPO / '.build' / 'collections'


def _link_collection():
    link = COLLECTIONS_ROOT / 'ansible_collections' / 'openstack_ops' / 'glance'
    if link.is_symlink() and link.resolve() == REPO:
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    # Replace atomically: parallel pytest workers may race here.
    tmp = link.with_name(f'.glance.{os.getpid()}')
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(REPO, target_is_directory=True)
    os.replace(tmp, link)


_link_collection()
sys.path.insert(0, str(COLLECTIONS_ROOT))

# Tests that run ansible-playbook resolve openstack_ops.glance to this
# repository, and run modules with this interpreter (it has SQLAlchemy & co.).
os.environ['ANSIBLE_COLLECTIONS_PATH'] = str(COLLECTIONS_ROOT)
os.environ.setdefault('ANSIBLE_PYTHON_INTERPRETER', sys.executable)
