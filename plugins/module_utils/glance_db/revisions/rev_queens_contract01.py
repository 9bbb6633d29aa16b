# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: queens_contract01
Revises: pike_contract01
Depends on: queens_expand01
"""

from __future__ import annotations

revision = "queens_contract01"
down_revision = "pike_contract01"
branch_labels = None
depends_on = "queens_expand01"


def upgrade():
    pass
