# -*- coding: utf-8 -*-
"""Drop images.is_public and the triggers; visibility becomes NOT NULL, default 'shared'.

Revision ID: ocata_contract01
Revises: mitaka02
Depends on: ocata_expand01
"""

from __future__ import annotations

from ..deps import op, sa
from .online import drop_triggers_if_present
from .visibility import TRIGGER_NAMES, visibility_type

revision = "ocata_contract01"
down_revision = "mitaka02"
branch_labels = ("ocata01", "contract")
depends_on = "ocata_expand01"

# The tables it rebuilds or indexes: on MySQL a large one goes through a shadow copy
# (online/copier.py), whose disk space check mode estimates.
rebuilds = ("images",)

# What the schema shows once this revision is applied (state.py checks it against alembic_version).
schema_marker = ("images.is_public", False)


def data_loss_check(connection):
    """Return a sentence when dropping is_public would lose an image's visibility."""
    unset = connection.execute(sa.text(
        "SELECT COUNT(*) FROM images WHERE visibility IS NULL")).scalar()
    if unset:
        return ("%d image(s) have no visibility yet; dropping images.is_public "
                "would lose it" % unset)
    return None


def upgrade():
    # Triggers first: once is_public is gone they would fail every write.
    drop_triggers_if_present(op.get_bind(), TRIGGER_NAMES)
    with op.batch_alter_table("images") as batch_op:
        batch_op.drop_index("ix_images_is_public")
        batch_op.drop_column("is_public")
    with op.batch_alter_table("images") as batch_op:
        batch_op.alter_column(
            "visibility", nullable=False, server_default="shared",
            existing_type=visibility_type())
