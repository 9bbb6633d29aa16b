# -*- coding: utf-8 -*-
"""Every Glance revision, imported by name: Ansible's zipped payload ships only
what is imported statically. A new revision is one more line here."""

from __future__ import annotations

from . import (
    rev_liberty,
    rev_mitaka01,
    rev_mitaka02,
    rev_ocata_expand01,
    rev_ocata_contract01,
    rev_pike_expand01,
    rev_pike_contract01,
    rev_queens_expand01,
    rev_queens_contract01,
    rev_rocky_expand01,
    rev_rocky_expand02,
    rev_rocky_contract01,
    rev_rocky_contract02,
    rev_train_expand01,
    rev_train_contract01,
    rev_ussuri_expand01,
    rev_ussuri_contract01,
    rev_wallaby_expand01,
    rev_wallaby_contract01,
    rev_xena_expand01,
    rev_xena_contract01,
    rev_yoga_expand01,
    rev_yoga_contract01,
    rev_zed_expand01,
    rev_zed_contract01,
    rev_2023_1_expand01,
    rev_2023_1_contract01,
    rev_2024_1_expand01,
    rev_2024_1_contract01,
)

# Graph order comes from each script's own down_revision and depends_on.
SCRIPTS = tuple(script for name, script in sorted(globals().items()) if name.startswith("rev_"))

# Glance's triggers that a shadow copy carries across its swap (online/cut_over.py), each
# declared by the revision that creates it: the online route itself knows none of Glance's.
CARRIED_TRIGGERS = dict(item for script in SCRIPTS for item in getattr(script, "carried_triggers", {}).items())
