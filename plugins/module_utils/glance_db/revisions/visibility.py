# -*- coding: utf-8 -*-
"""Ocata's move from images.is_public to images.visibility, shared by its revisions.

The MySQL triggers let release N-1 nodes (writing is_public) and release N nodes
(writing visibility) share the images table between expand and contract.
"""

from __future__ import annotations

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
INSERT_TRIGGER = """
CREATE TRIGGER insert_visibility BEFORE INSERT ON images
FOR EACH ROW
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
""".format(fail=_fail())

# Update: whichever of the two columns changed drives the other; both, or NULL, fail.
UPDATE_TRIGGER = """
CREATE TRIGGER update_visibility BEFORE UPDATE ON images
FOR EACH ROW
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
""".format(fail=_fail())
