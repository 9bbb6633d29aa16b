# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: train_contract01
Revises: rocky_contract02
Depends on: train_expand01
"""

from __future__ import annotations

revision = "train_contract01"
down_revision = "rocky_contract02"
branch_labels = None
depends_on = "train_expand01"


def upgrade():
    pass
