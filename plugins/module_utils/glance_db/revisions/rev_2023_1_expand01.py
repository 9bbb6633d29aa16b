# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: 2023_1_expand01
Revises: zed_expand01
"""

from __future__ import annotations

revision = "2023_1_expand01"
down_revision = "zed_expand01"
branch_labels = None
depends_on = None


def upgrade():
    pass
