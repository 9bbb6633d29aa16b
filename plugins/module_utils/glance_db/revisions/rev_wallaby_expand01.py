# -*- coding: utf-8 -*-
"""Add tasks.image_id, tasks.request_id and tasks.user_id.

Revision ID: wallaby_expand01
Revises: ussuri_expand01
"""

from __future__ import annotations

from ..deps import op, sa

revision = "wallaby_expand01"
down_revision = "ussuri_expand01"
branch_labels = None
depends_on = None

# The tables it rebuilds or indexes: on MySQL a large one goes through a shadow copy
# (online/copier.py), whose disk space check mode estimates.
rebuilds = ("tasks",)

# What the schema shows once this revision is applied (state.py checks it against alembic_version).
schema_marker = ("tasks.image_id", True)


def upgrade():
    op.add_column("tasks", sa.Column("image_id", sa.String(36), nullable=True))
    op.add_column("tasks", sa.Column("request_id", sa.String(64), nullable=True))
    op.add_column("tasks", sa.Column("user_id", sa.String(64), nullable=True))
    op.create_index("ix_tasks_image_id", "tasks", ["image_id"])
