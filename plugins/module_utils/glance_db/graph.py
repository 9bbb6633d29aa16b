# -*- coding: utf-8 -*-
"""Glance's revision graph, and what the rows of alembic_version mean.

A revision's ancestors are reached through down_revision and depends_on alike
(either may be a tuple). alembic_version holds the applied revisions that no
other applied revision descends from (what real Alembic leaves after each step).

Two readings of the same revision files' header constants:

* the plain one (ancestors, heads, rows, releases) needs nothing but Python, so
  glance_db_facts and a sync with nothing to do never import SQLAlchemy;
* Alembic's own RevisionMap (``revision_map``), built on first use by planning:
  the order revisions are applied in, and what is pending. It is fed the
  modules revisions/__init__.py imports by name, so it needs no directory scan
  and works in Ansible's zipped payload. Building it checks that Alembic finds
  the same heads.

Either way a second head on a branch (or a head outside expand and contract)
is refused loudly: Alembic would refuse to upgrade such a tree too.
"""

from __future__ import annotations

import re

from .deps import alembic_revision
from .errors import RevisionGraphError, UnknownRevision
from .revisions import SCRIPTS

EXPAND = "expand"
CONTRACT = "contract"
BRANCHES = (EXPAND, CONTRACT)

# What older Glance left, read as these revisions: alembic_version rows it
# wrote, and sqlalchemy-migrate's versions (migrate_version, repository
# LEGACY_REPOSITORY) from before Alembic.
LEGACY_ROWS = {"ocata01": "ocata_contract01", "pike01": "pike_contract01"}
LEGACY_MIGRATE_VERSIONS = {42: "liberty", 43: "mitaka01", 44: "mitaka02", 45: "ocata_contract01"}
LEGACY_REPOSITORY = "Glance Migrations"

# Glance names each revision after its release: ocata_contract01, mitaka02,
# 2024_1_expand01 (a dated release, 2024.1).
_RELEASE_OF_ID = re.compile(r"^(?P<release>.+?)(?:_(?:expand|contract))?\d*$")


def _ids(value):
    """down_revision / depends_on / branch_labels as a tuple: None, one id, or several."""
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class Revision(object):
    """One revision script with its place in the graph."""

    def __init__(self, script):
        self.id = script.revision
        self.script = script
        self.down = _ids(script.down_revision)
        self.depends_on = _ids(script.depends_on)
        self.labels = _ids(script.branch_labels)
        self.branch = None  # filled in by the graph

    @property
    def release(self):
        """The OpenStack release the revision belongs to: ocata, 2024.1."""
        name = _RELEASE_OF_ID.match(self.id).group("release")
        return re.sub(r"^(\d{4})_(\d)$", r"\1.\2", name)

    @property
    def parents(self):
        return self.down + self.depends_on

    def __repr__(self):
        return "Revision(%s)" % self.id


class RevisionGraph(object):
    """All revisions this collection knows; ``heads`` maps expand and contract to their head."""

    def __init__(self, scripts):
        self.scripts = tuple(scripts)
        self.by_id = {}
        for script in self.scripts:
            if script.revision in self.by_id:
                raise RevisionGraphError("Two revision files declare revision %s." % script.revision)
            self.by_id[script.revision] = Revision(script)
        self._ancestors = {}
        for revision_id in sorted(self.by_id):
            self._closure(revision_id, ())
        for revision_id in self._light_order():
            rev = self.by_id[revision_id]
            rev.branch = self._branch_of(rev)
        self.heads = self._find_heads()
        self._map = None
        self._order = None

    # ---- the plain reading (no third-party import)
    def _closure(self, revision_id, path):
        if revision_id in self._ancestors:
            return self._ancestors[revision_id]
        if revision_id in path:
            raise RevisionGraphError("The revision graph has a cycle: %s." % " -> ".join(path + (revision_id,)))
        rev = self.by_id.get(revision_id)
        if rev is None:
            raise RevisionGraphError("Revision %s names %s, which no revision file declares."
                                     % (path[-1], revision_id))
        found = frozenset([revision_id]).union(*[self._closure(p, path + (revision_id,)) for p in rev.parents])
        self._ancestors[revision_id] = found
        return found

    def _light_order(self):
        # An ancestor set is strictly smaller than its descendants': a valid order.
        return sorted(self.by_id, key=lambda r: (len(self._ancestors[r]), r))

    def _branch_of(self, rev):
        for label in BRANCHES:
            if label in rev.labels:
                return label
        for down in rev.down:
            if self.by_id[down].branch:
                return self.by_id[down].branch
        return None

    def _tips(self, ids):
        """Those of ``ids`` that no other of ``ids`` descends from, sorted."""
        ids = set(ids)
        return sorted(r for r in ids if not any(r in self._ancestors[o] for o in ids if o != r))

    def _find_heads(self):
        heads = {}
        for branch in BRANCHES:
            tips = self._tips(r.id for r in self.by_id.values() if r.branch == branch)
            if len(tips) != 1:
                raise RevisionGraphError(
                    "The %s branch has %s: %s. Each branch must end in exactly one revision; "
                    "give the newer revision the other as down_revision."
                    % (branch, "no head" if not tips else "%d heads" % len(tips), ", ".join(tips) or "-"))
            heads[branch] = tips[0]
        stray = sorted(set(self._tips(self.by_id)) - set(heads.values()))
        if stray:
            raise RevisionGraphError(
                "Revision(s) %s end neither the expand nor the contract branch: "
                "their down_revision must be on one of them." % ", ".join(stray))
        return heads

    # ---- Alembic's reading, for planning
    @property
    def revision_map(self):
        """alembic.script.revision.RevisionMap of the same scripts (imports Alembic on first use)."""
        if self._map is None:
            revision_map = alembic_revision.RevisionMap(lambda: [
                alembic_revision.Revision(s.revision, s.down_revision, dependencies=s.depends_on,
                                          branch_labels=s.branch_labels) for s in self.scripts])
            try:
                found = dict((branch, revision_map.get_current_head(branch)) for branch in BRANCHES)
                tips = set(revision_map.heads)
            except alembic_revision.RevisionError as exc:
                raise RevisionGraphError("Alembic refuses the revision graph: %s" % exc)
            if found != self.heads or tips != set(self.heads.values()):
                raise RevisionGraphError(
                    "Alembic finds heads %s where the revision files' headers give %s."
                    % (", ".join(sorted(tips)), ", ".join(sorted(self.heads.values()))))
            self._map = revision_map
        return self._map

    @property
    def order(self):
        """Every revision, each after all it needs, as Alembic walks them (planning only)."""
        if self._order is None:
            walked = self.revision_map.iterate_revisions("heads", "base")
            self._order = [self.by_id[r.revision] for r in reversed(list(walked))]
        return self._order

    # ---- look-ups
    def get(self, revision_id):
        try:
            return self.by_id[revision_id]
        except KeyError:
            raise UnknownRevision(
                "Unknown revision '%s'. Known revisions: %s."
                % (revision_id, ", ".join(self._light_order())))

    def ancestors(self, revision_id):
        """The revision and every revision it needs, as a set of ids."""
        self.get(revision_id)
        return self._ancestors[revision_id]

    def applied_from_rows(self, rows):
        """Every revision applied in a database whose alembic_version holds ``rows``."""
        applied = set()
        for row in rows:
            applied |= self.ancestors(LEGACY_ROWS.get(row, row))
        return applied

    def rows_for(self, applied):
        """What alembic_version holds once exactly ``applied`` has been applied."""
        return self._tips(applied)

    def branch_current(self, applied, branch):
        """The newest applied revision of a branch, or None."""
        tips = self._tips(r for r in applied if self.by_id[r].branch == branch)
        return tips[-1] if tips else None

    def pending(self, applied, target):
        """The revisions of ``target`` not yet applied, in the order Alembic applies them."""
        return [r for r in self.order if r.id in target and r.id not in applied]


GRAPH = RevisionGraph(SCRIPTS)
