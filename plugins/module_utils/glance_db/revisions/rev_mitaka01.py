# -*- coding: utf-8 -*-
"""Index images by created_at and updated_at.

Revision ID: mitaka01
Revises: liberty
"""

from __future__ import annotations

from ..deps import op

revision = "mitaka01"
down_revision = "liberty"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("images") as batch_op:
        batch_op.create_index("created_at_image_idx", ["created_at"])
        batch_op.create_index("updated_at_image_idx", ["updated_at"])
