# -*- coding: utf-8 -*-
"""Glance's revision graph, and what the rows of alembic_version mean.

A revision's ancestors are reached through down_revision and depends_on alike.
alembic_version holds the applied revisions that no other applied revision
descends from (what real Alembic leaves after each step).
"""

from __future__ import annotations

import re

from .errors import UnknownRevision
from .revisions import SCRIPTS

EXPAND = "expand"
CONTRACT = "contract"

# Rows older Glance wrote, read by current Glance as these revisions.
LEGACY_ROWS = {"ocata01": "ocata_contract01", "pike01": "pike_contract01"}

# Glance names each revision after its release: ocata_contract01, mitaka02,
# 2024_1_expand01 (a dated release, 2024.1).
_RELEASE_OF_ID = re.compile(r"^(?P<release>.+?)(?:_(?:expand|contract))?\d*$")


class Revision(object):
    """One revision script with its place in the graph."""

    def __init__(self, script):
        self.id = script.revision
        self.script = script
        self.down = script.down_revision
        self.depends_on = script.depends_on
        self.labels = tuple(script.branch_labels or ())
        self.branch = None  # filled in by the graph

    @property
    def release(self):
        """The OpenStack release the revision belongs to: ocata, 2024.1."""
        name = _RELEASE_OF_ID.match(self.id).group("release")
        return re.sub(r"^(\d{4})_(\d)$", r"\1.\2", name)

    @property
    def parents(self):
        return tuple(r for r in (self.down, self.depends_on) if r)

    def __repr__(self):
        return "Revision(%s)" % self.id


class RevisionGraph(object):
    """All revisions this collection knows, in an order that respects the graph."""

    def __init__(self, scripts):
        by_id = dict((s.revision, Revision(s)) for s in scripts)
        self.by_id = by_id
        self.order = self._topological(by_id)
        self._ancestors = {}
        for rev in self.order:
            self._ancestors[rev.id] = frozenset([rev.id]).union(
                *[self._ancestors[p] for p in rev.parents])
        for rev in self.order:
            rev.branch = self._branch_of(rev)
        self.heads = dict((branch, self._head(branch)) for branch in (EXPAND, CONTRACT))

    @staticmethod
    def _topological(by_id):
        ordered, placed = [], set()
        pending = sorted(by_id.values(), key=lambda r: r.id)
        while pending:
            ready = [r for r in pending if all(p in placed for p in r.parents)]
            if not ready:
                raise ValueError("revision graph has a cycle or a missing parent")
            # Trunk and expand first, so a plan expands before it contracts.
            ready.sort(key=lambda r: (CONTRACT in r.labels or r.depends_on is not None, r.id))
            ordered.append(ready[0])
            placed.add(ready[0].id)
            pending.remove(ready[0])
        return ordered

    def _branch_of(self, rev):
        for label in (EXPAND, CONTRACT):
            if label in rev.labels:
                return label
        if rev.down and self.by_id[rev.down].branch:
            return self.by_id[rev.down].branch
        return None

    def _head(self, branch):
        members = [r.id for r in self.order if r.branch == branch]
        heads = [r for r in members
                 if not any(r in self._ancestors[o] for o in members if o != r)]
        return heads[0]

    # ---- look-ups
    def get(self, revision_id):
        try:
            return self.by_id[revision_id]
        except KeyError:
            raise UnknownRevision(
                "Unknown revision '%s'. Known revisions: %s."
                % (revision_id, ", ".join(r.id for r in self.order)))

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
        return sorted(r for r in applied
                      if not any(r in self._ancestors[o] for o in applied if o != r))

    def branch_current(self, applied, branch):
        """The newest applied revision of a branch, or None."""
        members = [r.id for r in self.order if r.branch == branch and r.id in applied]
        return members[-1] if members else None

    def pending(self, applied, target):
        """The revisions of ``target`` not yet applied, in graph order."""
        return [r for r in self.order if r.id in target and r.id not in applied]

    def newest_first(self):
        return [r.id for r in reversed(self.order)]


GRAPH = RevisionGraph(SCRIPTS)
