# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenStack release names in order, and the Glance version each one shipped.

Plain Python (no third-party import): the ``glance_db_node_release`` module
runs it on a Glance API node, which need not have SQLAlchemy.

The names are the ones the revision ids use (``ocata``, ``2024.1``), so a
node's release and the release of a database revision compare directly.
"""

from __future__ import annotations

import json
import re

# (release, Glance major version, other names). Glance's major version goes up
# by one each cycle: 14.0.0 was Ocata, 25.0.0 Zed, 28.0.0 2024.1, 31.0.0 2025.2
# (openstack/releases, deliverables/<series>/glance.yaml).
RELEASES = (
    ("liberty", 11, ()),
    ("mitaka", 12, ()),
    ("newton", 13, ()),
    ("ocata", 14, ()),
    ("pike", 15, ()),
    ("queens", 16, ()),
    ("rocky", 17, ()),
    ("stein", 18, ()),
    ("train", 19, ()),
    ("ussuri", 20, ()),
    ("victoria", 21, ()),
    ("wallaby", 22, ()),
    ("xena", 23, ()),
    ("yoga", 24, ()),
    ("zed", 25, ()),
    ("2023.1", 26, ("antelope",)),
    ("2023.2", 27, ("bobcat",)),
    ("2024.1", 28, ("caracal",)),
    ("2024.2", 29, ("dalmatian",)),
    ("2025.1", 30, ("epoxy",)),
    ("2025.2", 31, ("flamingo",)),
    ("2026.1", 32, ("gazpacho",)),
    ("2026.2", 33, ()),
)

# What a node on a Glance major version beyond the table reports.
NEWER = "newer than"
ORDER = tuple(name for name, _major, _aliases in RELEASES)
_BY_NAME = dict((alias, name) for name, _major, aliases in RELEASES for alias in (name,) + aliases)
_BY_MAJOR = dict((major, name) for name, major, _aliases in RELEASES)
# An epoch and a distribution suffix are allowed: 2:28.0.0-0ubuntu1, 28.1.0.
_VERSION = re.compile(r"^(?:\d+:)?(?P<major>\d+)\.\d+")


# Dated releases come twice a year (YYYY.1, YYYY.2), one Glance major each, so
# one after the table is known without an edit here: a new Glance release is
# new revision files only (docs/adding-a-release.md).
_DATED = re.compile(r"^(?P<year>\d{4})\.(?P<half>[12])$")


def _cycles_after_table(name):
    """How many cycles a dated release comes after the table's last one (<= 0: not after it)."""
    match, last = _DATED.match(name), _DATED.match(ORDER[-1])
    if not match:
        return 0
    return (int(match.group("year")) - int(last.group("year"))) * 2 + int(match.group("half")) - int(last.group("half"))


def normalize(name):
    """The release called ``name`` (``Caracal``, ``2024.1``, a dated one after the table), or None when unknown."""
    name = str(name).strip().lower()
    return _BY_NAME.get(name) or (name if _cycles_after_table(name) > 0 else None)


def from_output(text):
    """The release a version check printed: a Glance version (``33.0.0``) or a release name.

    Returns ``(release, reason)``: ``release`` is None when the text names none,
    and ``reason`` then says why.
    """
    value = (text or "").strip()
    lines = value.splitlines()
    value = lines[-1].strip() if lines else ""
    if not value:
        return None, "the check printed nothing"
    release = normalize(value)
    if release:
        return release, None
    match = _VERSION.match(value)
    if match:
        major = int(match.group("major"))
        if major in _BY_MAJOR:
            return _BY_MAJOR[major], None
        if major > RELEASES[-1][1]:
            # A release newer than this table still runs everything we know.
            return NEWER + " " + ORDER[-1], None
        return None, "Glance %s is older than any release this collection knows" % value
    return None, "%r is neither a Glance version nor a release name" % value[:80]


def rank(release):
    """The position of ``release`` in the order, or None when unknown.

    A release newer than the table (from ``from_output``) ranks above all.
    """
    if release is None:
        return None
    if str(release).startswith(NEWER):
        return len(ORDER)
    name = normalize(release)
    if name is None:
        return None
    return ORDER.index(name) if name in ORDER else len(ORDER) - 1 + _cycles_after_table(name)


def at_least(release, minimum):
    """True when ``release`` is ``minimum`` or a later release; False when either is unknown."""
    mine, needed = rank(release), rank(minimum)
    return mine is not None and needed is not None and mine >= needed


def from_marker(content):
    """The release recorded in a marker file written by the role (JSON, key ``release``), or None."""
    try:
        return normalize(json.loads(content)["release"])
    except (ValueError, KeyError, TypeError):
        return None


def report(command=None, check=None, marker=None, fallback=None, minimum=None):
    """What a node runs, from the first source it has: its check, else its marker, else the inventory.

    ``check`` is ``(rc, stdout, stderr)`` of ``command`` (an argv list), or
    ``(None, '', error)`` when it could not start. A check that fails names
    no release, so the node counts as behind: a node that cannot say what it
    runs must not let contract drop what its release may still use.
    """
    result = {"release": None, "source": None, "output": None, "error": None}
    if command:
        rc, out, err = check
        result.update(source="command", output=(out or "").strip()[-200:])
        if rc != 0:
            detail = (err or out or "").strip().splitlines()
            result["error"] = "%s %s (%s)" % (
                command[0], "could not run" if rc is None else "exited %d" % rc,
                detail[-1][:160] if detail else "no output")
        else:
            result["release"], result["error"] = from_output(out)
    elif marker is not None:
        result.update(source="marker", release=from_marker(marker))
        if result["release"] is None:
            result["error"] = "the release marker names no release this collection knows"
    elif fallback:
        result.update(source="inventory", release=normalize(fallback))
        if result["release"] is None:
            result["error"] = "glance_db_node_release %r is no release this collection knows" % str(fallback)
    else:
        result.update(source="none", error="no release check, marker or glance_db_node_release")
    if minimum is not None:
        result["minimum"] = minimum
        result["at_least"] = at_least(result["release"], minimum)
    return result
