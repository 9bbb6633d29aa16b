# -*- coding: utf-8 -*-
"""Ocata: give every image a visibility from is_public and its members.

is_public true -> public; false -> private, or shared when the image has at
least one member that is not deleted.
"""

from __future__ import annotations

from .batched import BatchedUpdate

name = "ocata_migrate01_community_images"
# Rows can exist to migrate only between these two revisions.
opened_by = "ocata_expand01"
closed_by = "ocata_contract01"

# Before ocata_expand01 there is no visibility column yet: every image will need one.
ROWS_BEFORE_OPENED = "SELECT COUNT(*) FROM images"

_HAS_MEMBERS = ("EXISTS (SELECT 1 FROM image_members m "
                "WHERE m.image_id = images.id AND NOT m.deleted)")

STEPS = (
    BatchedUpdate(
        table="images", key="id",
        where="visibility IS NULL",
        column="visibility",
        value=("CASE WHEN is_public THEN 'public' "
               "WHEN %s THEN 'shared' ELSE 'private' END" % _HAS_MEMBERS),
        pg_type="image_visibility",
    ),
    BatchedUpdate(
        table="images", key="id",
        where="visibility = 'private' AND %s" % _HAS_MEMBERS,
        column="visibility",
        value="'shared'",
    ),
)
