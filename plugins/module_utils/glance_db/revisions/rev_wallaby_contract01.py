# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: wallaby_contract01
Revises: ussuri_contract01
Depends on: wallaby_expand01
"""

from __future__ import annotations

revision = "wallaby_contract01"
down_revision = "ussuri_contract01"
branch_labels = None
depends_on = "wallaby_expand01"


def upgrade():
    pass
