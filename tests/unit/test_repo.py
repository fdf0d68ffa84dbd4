"""The repository's own checks: committed BPF objects are fresh, code is ruff clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent


def test_bpf_objects_match_their_sources() -> None:
    if not (shutil.which("clang") and shutil.which("llvm-strip")):
        pytest.skip("clang is not installed (scripts/setup.sh --test installs it)")
    proc = subprocess.run(["make", "-s", "check-bpf"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests", "bench"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
