# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: ussuri_contract01
Revises: train_contract01
Depends on: ussuri_expand01
"""

from __future__ import annotations

revision = "ussuri_contract01"
down_revision = "train_contract01"
branch_labels = None
depends_on = "ussuri_expand01"


def upgrade():
    pass
