"""What a test needs that the machine may lack: in CI its absence fails the test, elsewhere it skips, saying why."""

from __future__ import annotations

import os

import pytest


def unavailable(reason, what):
    """Fail (CI) or skip (elsewhere) because ``what`` cannot be had; ``reason`` says why."""
    if os.environ.get("CI"):
        pytest.fail("%s\n(CI requires %s)" % (reason, what), pytrace=False)
    lines = [line for line in str(reason).splitlines() if line.strip()]
    pytest.skip(" ".join(lines[:1] + lines[-1:]) if len(lines) > 1 else (lines or [what])[0])
