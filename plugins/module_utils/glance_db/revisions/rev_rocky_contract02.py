# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: rocky_contract02
Revises: rocky_contract01
Depends on: rocky_expand02
"""

from __future__ import annotations

revision = "rocky_contract02"
down_revision = "rocky_contract01"
branch_labels = None
depends_on = "rocky_expand02"


def upgrade():
    pass
