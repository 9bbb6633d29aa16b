# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: 2023_1_contract01
Revises: zed_contract01
Depends on: 2023_1_expand01
"""

from __future__ import annotations

revision = "2023_1_contract01"
down_revision = "zed_contract01"
branch_labels = None
depends_on = "2023_1_expand01"


def upgrade():
    pass
