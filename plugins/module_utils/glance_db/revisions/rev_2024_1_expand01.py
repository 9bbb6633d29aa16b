# -*- coding: utf-8 -*-
"""Add the image cache tables node_reference and cached_images.

Revision ID: 2024_1_expand01
Revises: 2023_1_expand01
"""

from __future__ import annotations

from ..deps import op, sa

revision = "2024_1_expand01"
down_revision = "2023_1_expand01"
branch_labels = None
depends_on = None

# What the schema shows once this revision is applied (state.py checks it against alembic_version).
schema_marker = ("node_reference", True)


def _id_type():
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "node_reference",
        sa.Column("node_reference_id", _id_type(), nullable=False, autoincrement=True),
        sa.Column("node_reference_url", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("node_reference_id"),
        sa.UniqueConstraint("node_reference_url", name="uq_node_reference_node_reference_url"),
        mysql_engine="InnoDB", mysql_charset="utf8",
    )
    op.create_table(
        "cached_images",
        sa.Column("id", _id_type(), autoincrement=True, nullable=False),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("last_accessed", sa.DateTime(), nullable=False),
        sa.Column("last_modified", sa.DateTime(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(32), nullable=True),
        sa.Column("node_reference_id", _id_type(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["node_reference_id"], ["node_reference.node_reference_id"]),
        sa.UniqueConstraint("image_id", "node_reference_id",
                            name="ix_cached_images_image_id_node_reference_id"),
        mysql_engine="InnoDB", mysql_charset="utf8",
    )
