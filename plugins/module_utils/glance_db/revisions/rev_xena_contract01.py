# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: xena_contract01
Revises: wallaby_contract01
Depends on: xena_expand01
"""

from __future__ import annotations

revision = "xena_contract01"
down_revision = "wallaby_contract01"
branch_labels = None
depends_on = "xena_expand01"


def upgrade():
    pass
