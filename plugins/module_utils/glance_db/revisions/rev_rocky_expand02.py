# -*- coding: utf-8 -*-
"""Add images.os_hash_algo and images.os_hash_value (multihash).

Revision ID: rocky_expand02
Revises: rocky_expand01
"""

from __future__ import annotations

from ..deps import op, sa

revision = "rocky_expand02"
down_revision = "rocky_expand01"
branch_labels = None
depends_on = None

# The tables it rebuilds or indexes: on MySQL a large one goes through a shadow copy
# (online/copier.py), whose disk space check mode estimates.
rebuilds = ("images",)

# What the schema shows once this revision is applied (state.py checks it against alembic_version).
schema_marker = ("images.os_hash_algo", True)


def upgrade():
    op.add_column("images", sa.Column("os_hash_algo", sa.String(64), nullable=True))
    op.add_column("images", sa.Column("os_hash_value", sa.String(128), nullable=True))
    op.create_index("os_hash_value_image_idx", "images", ["os_hash_value"])
