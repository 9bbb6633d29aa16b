# -*- coding: utf-8 -*-
"""Add images.os_hidden.

Revision ID: rocky_expand01
Revises: queens_expand01
"""

from __future__ import annotations

from ..deps import op, sa

revision = "rocky_expand01"
down_revision = "queens_expand01"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("images", sa.Column(
        "os_hidden", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("os_hidden_image_idx", "images", ["os_hidden"])
