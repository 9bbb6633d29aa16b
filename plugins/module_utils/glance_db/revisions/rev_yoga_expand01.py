# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: yoga_expand01
Revises: xena_expand01
"""

from __future__ import annotations

revision = "yoga_expand01"
down_revision = "xena_expand01"
branch_labels = None
depends_on = None


def upgrade():
    pass
