# -*- coding: utf-8 -*-
"""Every Glance data migration that moves rows, imported by name (zip-safe).

Releases whose data migration is empty in Glance have no file here.
"""

from __future__ import annotations

from . import (
    ocata_migrate01_community_images,
    train_migrate01_backend_to_store,
)

MIGRATIONS = (
    ocata_migrate01_community_images,
    train_migrate01_backend_to_store,
)
