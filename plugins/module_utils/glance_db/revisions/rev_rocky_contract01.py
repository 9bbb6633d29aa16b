# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: rocky_contract01
Revises: queens_contract01
Depends on: rocky_expand01
"""

from __future__ import annotations

revision = "rocky_contract01"
down_revision = "queens_contract01"
branch_labels = None
depends_on = "rocky_expand01"


def upgrade():
    pass
