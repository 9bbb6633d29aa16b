# -*- coding: utf-8 -*-
"""Add images.visibility beside is_public; on an online MySQL expand, add the sync triggers.

Revision ID: ocata_expand01
Revises: mitaka02
"""

from __future__ import annotations

from ..deps import op, sa
from .online import triggers_wanted
from .visibility import CARRIED, INSERT_TRIGGER, UPDATE_TRIGGER, visibility_type

revision = "ocata_expand01"
down_revision = "mitaka02"
branch_labels = ("expand",)
depends_on = None

# The tables it rebuilds or indexes: on MySQL a large one goes through a shadow copy
# (online/copier.py), whose disk space check mode estimates.
rebuilds = ("images",)

# What the schema shows once this revision is applied (state.py checks it against alembic_version).
schema_marker = ("images.visibility", True)

# Its triggers, which a shadow copy of images carries across its swap until
# ocata_contract01 drops them (online/cut_over.py).
carried_triggers = CARRIED


def upgrade():
    bind = op.get_bind()
    enum = visibility_type()
    enum.create(bind=bind, checkfirst=False)
    op.add_column("images", sa.Column("visibility", enum, nullable=True, server_default=None))
    op.create_index("visibility_image_idx", "images", ["visibility"])
    # Release N nodes write only visibility, so is_public must accept NULL.
    with op.batch_alter_table("images") as batch_op:
        batch_op.alter_column(
            "is_public", nullable=True, server_default=None,
            existing_type=sa.Boolean(create_constraint=True, name=None))
    if triggers_wanted(bind):
        op.execute(INSERT_TRIGGER)
        op.execute(UPDATE_TRIGGER)
