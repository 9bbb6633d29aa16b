"""Images written the way Glance releases before Ocata wrote them (is_public)."""

from __future__ import annotations

import functools
import json
import re

from sqlalchemy import text

IMAGE_INSERT = (
    "INSERT INTO images (id, name, size, status, is_public, created_at, deleted, "
    "min_disk, min_ram, protected) VALUES (:id, :name, 1024, 'active', :is_public, "
    "CURRENT_TIMESTAMP, :deleted, 0, 0, :protected)"
)
MEMBER_INSERT = (
    "INSERT INTO image_members (image_id, member, can_share, created_at, deleted, status) "
    "VALUES (:image_id, :member, :f, CURRENT_TIMESTAMP, :deleted, 'accepted')"
)
LOCATION_INSERT = (
    "INSERT INTO image_locations (image_id, value, created_at, deleted, meta_data, status) "
    "VALUES (:image_id, :value, CURRENT_TIMESTAMP, :f, :meta, 'active')"
)


def image_id(n):
    return "00000000-0000-0000-0000-%012d" % n


def seed_pre_ocata(db, count=40):
    """Seed ``count`` images with members and locations; return the expected
    visibility of each image after the Ocata data migration."""
    expected = {}
    images, members, locations = [], [], []
    for n in range(count):
        kind = n % 5
        iid = image_id(n)
        is_public = kind == 0
        images.append(dict(id=iid, name="image-%d" % n, is_public=is_public,
                           deleted=(n % 7 == 0), protected=False))
        if kind == 2:  # private with an active member: shared
            members.append(dict(image_id=iid, member="tenant-a", f=False, deleted=False))
        if kind == 3:  # private whose only member was removed: stays private
            members.append(dict(image_id=iid, member="tenant-b", f=False, deleted=True))
        if kind == 4:  # private with one removed and one active member: shared
            members.append(dict(image_id=iid, member="tenant-c", f=False, deleted=True))
            members.append(dict(image_id=iid, member="tenant-d", f=False, deleted=False))
        expected[iid] = "public" if is_public else ("shared" if kind in (2, 4) else "private")
        key = "backend" if n % 2 else "store"
        locations.append(dict(image_id=iid, value="file:///images/%d" % n, f=False,
                              meta=json.dumps({key: "fast"})))
    with db.engine.begin() as conn:
        insert_many(conn, IMAGE_INSERT, images)
        insert_many(conn, MEMBER_INSERT, members)
        insert_many(conn, LOCATION_INSERT, locations)
    return expected


def insert_many(conn, statement, rows, per_statement=500):
    """``statement`` (INSERT ... VALUES (...) with :name parameters) for each of ``rows``, as
    multi-row INSERTs: PyMySQL sends a statement per row where the VALUES hold anything but
    parameters (CURRENT_TIMESTAMP, literals), six seconds for 12,000 images."""
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        conn.execute(_multi_row(statement, len(chunk)),
                     dict(("%s_%d" % (name, i), value) for i, row in enumerate(chunk) for name, value in row.items()))


@functools.lru_cache(maxsize=None)
def _multi_row(statement, count):
    """``statement`` with ``count`` rows of VALUES, row i's parameters suffixed _i."""
    head, values = statement.split(" VALUES ", 1)
    return text(head + " VALUES " + ", ".join(re.sub(r":(\w+)", r":\1_%d" % i, values) for i in range(count)))


def visibilities(db):
    return dict(db.rows("SELECT id, visibility FROM images"))


def location_metadata(db):
    return sorted((json.loads(r[0]) for r in db.rows("SELECT meta_data FROM image_locations")), key=str)
