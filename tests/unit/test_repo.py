"""The repository's own checks: committed BPF objects are fresh, code is ruff clean, the package
type-checks under mypy --strict."""

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
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests", "bench", "examples"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    # The whole package and the examples (settings in pyproject.toml).
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
