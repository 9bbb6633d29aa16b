# -*- coding: utf-8 -*-
"""The errors a run can end with; each carries one readable sentence."""

from __future__ import annotations


class GlanceDbError(Exception):
    """A refusal or failure the operator can act on; str() is the whole message."""


class ConfigurationError(GlanceDbError):
    """The connection options or the Glance config file cannot be used."""


class ConnectionFailed(GlanceDbError):
    """The database server could not be reached or refused the login."""


class UnknownRevision(GlanceDbError):
    """A revision that this collection does not know (asked for, or found)."""


class RevisionGraphError(GlanceDbError):
    """The revision files do not form one head per branch (a packaging mistake)."""


class NotGlanceDatabase(GlanceDbError):
    """The database holds tables but is not under Glance's migration control."""


class DowngradeRefused(GlanceDbError):
    """The target is below the database's version; Glance has no downgrades."""


class PhaseOrderError(GlanceDbError):
    """A phase was asked for before the phase it depends on."""


class UnsupportedEngine(GlanceDbError):
    """The database engine does not support the requested (online) phase."""


class LockTimeout(GlanceDbError):
    """Another run held the migration lock for longer than lock_timeout."""


class DataLossRefused(GlanceDbError):
    """Contract would drop data that has not been carried over."""


class MissingPrivilege(GlanceDbError):
    """The database user cannot do what the phase needs (e.g. create triggers)."""


class ClusterNotReady(GlanceDbError):
    """A Galera node that is not Primary and Synced, or a cluster below its minimum size."""


class LockLost(GlanceDbError):
    """The run's lease on the Galera migration lock expired or was taken over."""


class LeftoversFound(GlanceDbError):
    """A stopped run's leftovers stand, and this module does not clear them."""


class InconsistentVersion(GlanceDbError):
    """alembic_version contradicts itself or the schema."""


class MetadefsError(GlanceDbError):
    """Files or options a metadefs load cannot use; nothing has been written."""
