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

# The tables it rebuilds or indexes: on MySQL a large one goes through a shadow copy
# (online/copier.py), whose disk space check mode estimates.
rebuilds = ("images",)

# What the schema shows once this revision is applied (state.py checks it against alembic_version).
schema_marker = ("images.os_hidden", True)


def upgrade():
    op.add_column("images", sa.Column(
        "os_hidden", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("os_hidden_image_idx", "images", ["os_hidden"])
