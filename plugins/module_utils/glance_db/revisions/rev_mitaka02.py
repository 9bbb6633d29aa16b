# -*- coding: utf-8 -*-
"""Rename the metadef resource type OS::Nova::Instance to OS::Nova::Server.

Revision ID: mitaka02
Revises: mitaka01
"""

from __future__ import annotations

from ..deps import op, sa

revision = "mitaka02"
down_revision = "mitaka01"
branch_labels = None
depends_on = None


def upgrade():
    resource_types = sa.table("metadef_resource_types", sa.column("name", sa.String(80)))
    op.execute(
        resource_types.update()
        .where(resource_types.c.name == "OS::Nova::Instance")
        .values(name="OS::Nova::Server")
    )
