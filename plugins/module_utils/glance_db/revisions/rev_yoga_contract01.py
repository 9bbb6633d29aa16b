# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: yoga_contract01
Revises: xena_contract01
Depends on: yoga_expand01
"""

from __future__ import annotations

revision = "yoga_contract01"
down_revision = "xena_contract01"
branch_labels = None
depends_on = "yoga_expand01"


def upgrade():
    pass
