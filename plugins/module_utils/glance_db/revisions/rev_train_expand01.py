# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: train_expand01
Revises: rocky_expand02
"""

from __future__ import annotations

revision = "train_expand01"
down_revision = "rocky_expand02"
branch_labels = None
depends_on = None


def upgrade():
    pass
