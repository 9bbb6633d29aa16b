# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: zed_contract01
Revises: yoga_contract01
Depends on: zed_expand01
"""

from __future__ import annotations

revision = "zed_contract01"
down_revision = "yoga_contract01"
branch_labels = None
depends_on = "zed_expand01"


def upgrade():
    pass
