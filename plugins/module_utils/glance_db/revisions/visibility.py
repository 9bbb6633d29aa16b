# -*- coding: utf-8 -*-
"""Ocata's move from images.is_public to images.visibility, shared by its revisions.

The MySQL triggers let release N-1 nodes (writing is_public) and release N nodes
(writing visibility) share the images table between expand and contract.
"""

from __future__ import annotations

import functools

from ..deps import sa

VISIBILITY_VALUES = ("private", "public", "shared", "community")
ERROR_MESSAGE = "Invalid visibility value"
TRIGGER_NAMES = ("insert_visibility", "update_visibility")


def visibility_type():
    """The enum type of images.visibility (a named type on PostgreSQL)."""
    return sa.Enum(*VISIBILITY_VALUES, name="image_visibility")


def _fail():
    return "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s';" % ERROR_MESSAGE


# Insert: exactly one of is_public / visibility must be given; derive the other.
_INSERT = """
CREATE TRIGGER {name} BEFORE INSERT ON {table}
FOR EACH ROW{order}
BEGIN
    IF NEW.is_public <=> NULL AND NEW.visibility <=> NULL THEN
        {fail}
    ELSEIF NOT(NEW.is_public <=> NULL OR NEW.visibility <=> NULL) THEN
        {fail}
    ELSEIF NOT NEW.is_public <=> NULL THEN
        IF NEW.is_public = 1 THEN
            SET NEW.visibility = 'public';
        ELSE
            SET NEW.visibility = 'shared';
        END IF;
    ELSEIF NOT NEW.visibility <=> NULL THEN
        IF NEW.visibility = 'public' THEN
            SET NEW.is_public = 1;
        ELSE
            SET NEW.is_public = 0;
        END IF;
    ELSE
        {fail}
    END IF;
END;
"""

# Update: whichever of the two columns changed drives the other; both, or NULL, fail.
_UPDATE = """
CREATE TRIGGER {name} BEFORE UPDATE ON {table}
FOR EACH ROW{order}
BEGIN
    IF NOT NEW.is_public <=> OLD.is_public THEN
        IF NEW.is_public <=> NULL THEN
            {fail}
        ELSEIF NOT NEW.visibility <=> OLD.visibility THEN
            {fail}
        ELSE
            IF NEW.is_public <=> 1 THEN
                SET NEW.visibility = 'public';
            ELSE
                SET NEW.visibility = 'shared';
            END IF;
        END IF;
    ELSEIF NOT NEW.visibility <=> OLD.visibility THEN
        IF NEW.visibility <=> NULL THEN
            {fail}
        ELSEIF NOT NEW.is_public <=> OLD.is_public THEN
            {fail}
        ELSE
            IF NEW.visibility <=> 'public' THEN
                SET NEW.is_public = 1;
            ELSE
                SET NEW.is_public = 0;
            END IF;
        END IF;
    END IF;
END;
"""

_TEMPLATES = {"insert_visibility": _INSERT, "update_visibility": _UPDATE}


# A stand-in reads no table (it once read images, to leave the copy's rows alone). The swap's
# RENAME locks the copy before images; a writer that opened images and waits for the copy
# deadlocks with it, and MariaDB (10.11.19) runs the writer's statement again without the
# tables the copy's triggers read: such a read failed the write with 1146 "Table '...images'
# doesn't exist" (tests/functional/test_swap_race.py). The rows the copy's own triggers write
# into the copy keep images' values all the same: their upsert's update takes images' row
# (online.copier.TableCopy._trigger), not what a stand-in made of the insert.


def create_trigger(glance_name, table="images", name=None, precedes=None, stand_in=False):
    """CREATE TRIGGER for one of Glance's two triggers, by default exactly as Glance's.

    A shadow-table copy of images (online/cut_over.py) carries them across its swap with
    stand-ins: the same trigger under another ``name``, on another ``table``, whose
    refusals are no-ops. Alone, a stand-in derives as Glance's does; run after
    Glance's own (``precedes`` the stand-in), it finds the row consistent and changes
    nothing, where the refusing body would refuse a row Glance's trigger completed.
    """
    return _TEMPLATES[glance_name].format(
        name=name or glance_name, table=table,
        order=" PRECEDES `%s`" % precedes if precedes else "",
        fail="DO 0;" if stand_in else _fail())


INSERT_TRIGGER = create_trigger("insert_visibility")
UPDATE_TRIGGER = create_trigger("update_visibility")


# The two as a shadow copy of images carries them across its swap (online/cut_over.py):
# Glance's name -> create(table, name=None, precedes=None, stand_in=False).
CARRIED = dict((glance_name, functools.partial(create_trigger, glance_name)) for glance_name in TRIGGER_NAMES)
