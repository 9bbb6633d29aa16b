"""Release names in order and the Glance version each names (no database, no Ansible)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import releases
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.graph import GRAPH


def test_every_revision_names_a_known_release():
    """The guard compares a node's release with a revision's: both must be in the table."""
    for revision in GRAPH.order:
        assert releases.normalize(revision.release) == revision.release, revision.id


def test_releases_are_ordered_like_the_revisions_of_each_branch():
    for branch in (None, "expand", "contract"):
        ranks = [releases.rank(r.release) for r in GRAPH.order if r.branch == branch]
        assert ranks and ranks == sorted(ranks), branch


def test_majors_go_up_by_one_a_cycle():
    majors = [major for _name, major, _aliases in releases.RELEASES]
    assert majors == list(range(majors[0], majors[0] + len(majors)))


@pytest.mark.parametrize("output, release", [
    ("33.0.0", "2026.2"),
    ("28.1.0\n", "2024.1"),
    ("some warning\n27.0.0", "2023.2"),   # the last line counts
    ("2:25.0.0-0ubuntu1", "zed"),         # a Debian version with epoch
    ("14.0.1", "ocata"),
    ("Caracal", "2024.1"),
    ("zed", "zed"),
    ("2023.1", "2023.1"),
])
def test_output_names_a_release(output, release):
    assert releases.from_output(output) == (release, None)


@pytest.mark.parametrize("output", ["", "glance", "5.0.0", "x.y"])
def test_output_that_names_no_release(output):
    release, reason = releases.from_output(output)
    assert release is None and reason


def test_a_version_beyond_the_table_is_newer_than_all():
    release, reason = releases.from_output("40.0.0")
    assert reason is None
    assert releases.at_least(release, releases.ORDER[-1])
    assert not releases.at_least(releases.ORDER[-1], release)


@pytest.mark.parametrize("release, minimum, expected", [
    ("2024.1", "2024.1", True),
    ("2026.2", "2024.1", True),
    ("zed", "2023.1", False),
    ("2023.1", "zed", True),
    ("ocata", "pike", False),
    ("caracal", "2024.1", True),
    (None, "ocata", False),
    ("unknown", "ocata", False),
])
def test_at_least_follows_the_release_order(release, minimum, expected):
    assert releases.at_least(release, minimum) is expected


def test_report_takes_the_command_before_the_marker():
    marker = json.dumps({"release": "2024.1"})
    got = releases.report(["glance-version"], (0, "27.0.0\n", ""), marker, "2024.1", "2024.1")
    assert got["release"] == "2023.2" and got["source"] == "command" and got["at_least"] is False


def test_report_counts_a_failed_check_as_behind():
    got = releases.report(["python3", "-c", "x"], (1, "", "ModuleNotFoundError: glance\n"), None, "2024.1", "ocata")
    assert got["release"] is None and got["at_least"] is False
    assert got["error"] == "python3 exited 1 (ModuleNotFoundError: glance)"
    got = releases.report(["nothere"], (None, "", "No such file"), None, None, "ocata")
    assert got["error"] == "nothere could not run (No such file)" and got["at_least"] is False


def test_report_without_a_command_reads_the_marker_then_the_inventory():
    assert releases.report([], None, json.dumps({"release": "2024.1"}), "2023.2")["release"] == "2024.1"
    assert releases.report([], None, "not json", "2023.2")["release"] is None
    assert releases.report([], None, None, "2023.2")["source"] == "inventory"
    assert releases.report([], None, None, None)["source"] == "none"


def test_a_dated_release_after_the_table_is_known_without_an_edit():
    """A new Glance release is new revision files: its dated name needs no line in the table."""
    last = releases.ORDER[-1]
    year, half = (int(part) for part in last.split("."))
    following = "%d.%d" % (year + half - 1, 2 if half == 1 else 1)
    assert releases.normalize(following) == following
    assert releases.rank(following) == releases.rank(last) + 1
    assert releases.at_least("2099.1", following) and not releases.at_least(last, "2099.1")
    assert releases.normalize("2099.3") is None and releases.normalize("2020.1") is None
