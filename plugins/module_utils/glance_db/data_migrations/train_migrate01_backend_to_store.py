# -*- coding: utf-8 -*-
"""Train: in image_locations.meta_data (JSON text) the key "backend" becomes "store"."""

from __future__ import annotations

from .batched import BatchedUpdate

name = "train_migrate01_backend_to_store"
opened_by = "train_expand01"
closed_by = "train_contract01"

# The key can be counted at any revision: no schema change is involved.
ROWS_BEFORE_OPENED = "SELECT COUNT(*) FROM image_locations WHERE meta_data LIKE '%\"backend\":%'"

STEPS = (
    BatchedUpdate(
        table="image_locations", key="id",
        where="meta_data LIKE '%\"backend\":%'",
        column="meta_data",
        value="REPLACE(meta_data, '\"backend\":', '\"store\":')",
    ),
)
