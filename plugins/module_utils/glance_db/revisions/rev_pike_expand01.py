# -*- coding: utf-8 -*-
"""Empty: keeps the expand and contract branches in step for this release.

Revision ID: pike_expand01
Revises: ocata_expand01
"""

from __future__ import annotations

revision = "pike_expand01"
down_revision = "ocata_expand01"
branch_labels = None
depends_on = None


def upgrade():
    pass
