# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: zed_expand01
Revises: yoga_expand01
"""

from __future__ import annotations

revision = "zed_expand01"
down_revision = "yoga_expand01"
branch_labels = None
depends_on = None


def upgrade():
    pass
