# -*- coding: utf-8 -*-
"""Drop the Glare artifact tables.

Revision ID: pike_contract01
Revises: ocata_contract01
Depends on: pike_expand01
"""

from __future__ import annotations

from ..deps import op

revision = "pike_contract01"
down_revision = "ocata_contract01"
branch_labels = None
depends_on = "pike_expand01"

# What the schema shows once this revision is applied (state.py checks it against alembic_version).
schema_marker = ("artifacts", False)

# Children before parents, the reverse of their creation.
ARTIFACT_TABLES = (
    "artifact_blob_locations",
    "artifact_properties",
    "artifact_blobs",
    "artifact_dependencies",
    "artifact_tags",
    "artifacts",
)


def upgrade():
    for table_name in ARTIFACT_TABLES:
        op.drop_table(table_name)
