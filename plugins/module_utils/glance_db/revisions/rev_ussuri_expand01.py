# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: ussuri_expand01
Revises: train_expand01
"""

from __future__ import annotations

revision = "ussuri_expand01"
down_revision = "train_expand01"
branch_labels = None
depends_on = None


def upgrade():
    pass
