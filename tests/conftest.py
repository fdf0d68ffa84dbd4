"""Shared test fixtures: live tests need root; CI makes a missing capability a failure."""

from __future__ import annotations

import os

import pytest

# On CI (and wherever TCPSCOPE_LIVE=1) a live test that cannot run fails.
LIVE_REQUIRED = bool(os.environ.get("CI") or os.environ.get("TCPSCOPE_LIVE"))


def missing(reason: str) -> None:
    if LIVE_REQUIRED:
        pytest.fail(f"live test cannot run here: {reason}")
    pytest.skip(reason)
