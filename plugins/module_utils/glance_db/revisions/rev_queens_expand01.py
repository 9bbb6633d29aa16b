# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: queens_expand01
Revises: pike_expand01
"""

from __future__ import annotations

revision = "queens_expand01"
down_revision = "pike_expand01"
branch_labels = None
depends_on = None


def upgrade():
    pass
