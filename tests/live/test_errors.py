"""Bad environments, made for real: one clear line on stderr and the documented exit code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import tcpscope
from tcpscope.ebpf.object import BpfObject
from tcpscope.errors import EXIT_ENVIRONMENT, EXIT_KERNEL, EXIT_PERMISSION, MissingFeature
from tcpscope.tool import object_spec

TOOL = [sys.executable, "-m", "tcpscope"]
NO_BPF = Path(__file__).with_name("no_bpf_syscall.py")


def one_line_error(cmd: list[str], code: int, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""
    return lines[0]


@pytest.mark.parametrize("tool", ["life", "states"])
def test_without_privileges(tool: str) -> None:
    # uid 0 but no capabilities at all: what a non-root user has.
    cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *TOOL, tool]
    line = one_line_error(cmd, EXIT_PERMISSION)
    assert "needs root" in line


def test_bpf_refused_by_the_kernel() -> None:
    # A seccomp filter makes every bpf() system call fail with EPERM.
    line = one_line_error([sys.executable, str(NO_BPF), *TOOL, "life"], EXIT_KERNEL)
    assert line.startswith("tcpscope life: ") and "Operation not permitted" in line


def test_libbpf_missing(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TCPSCOPE_LIBBPF": str(tmp_path / "libbpf.so.1")}
    line = one_line_error([*TOOL, "states"], EXIT_ENVIRONMENT, env)
    assert "cannot load libbpf" in line and "apt-get install libbpf1" in line


def test_libbpf_too_old_or_not_libbpf() -> None:
    env = {"PATH": "/usr/bin:/bin", "TCPSCOPE_LIBBPF": "libz.so.1"}
    line = one_line_error([*TOOL, "life"], EXIT_ENVIRONMENT, env)
    assert "libz.so.1 lacks" in line and "or newer is needed" in line


def test_tracefs_not_mountable() -> None:
    # In a private mount namespace, /sys/kernel is an empty read-only tmpfs:
    # no tracefs anywhere, and nowhere to mount it.
    script = "mount -t tmpfs -o ro none /sys/kernel && exec \"$@\""
    cmd = ["unshare", "-m", "sh", "-c", script, "sh", *TOOL, "life"]
    line = one_line_error(cmd, EXIT_ENVIRONMENT)
    assert "tracefs is not mounted and cannot be mounted" in line


def test_missing_tracepoint_is_named() -> None:
    spec = object_spec("life")
    spec.attach_points = ["tp_btf/no_such_tracepoint"]
    with pytest.raises(MissingFeature, match="no tracepoint 'no_such_tracepoint'"):
        BpfObject(spec)


@pytest.mark.parametrize(("tool", "message"), [
    ("tplist", "tcpscope tplist: reading tracefs (/sys/kernel/tracing) needs root (or CAP_DAC_READ_SEARCH): "
               "run it with sudo"),
    ("life", "tcpscope life: tcpscope needs root (or CAP_BPF and CAP_PERFMON): run it with sudo")])
def test_not_root(tool: str, message: str) -> None:
    # A real unprivileged user, running a copy of the package it can read.
    readable = tempfile.mkdtemp()
    try:
        os.chmod(readable, 0o755)
        shutil.copytree(Path(tcpscope.__file__).parent, Path(readable, "tcpscope"))
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        cmd = [*nobody, "/usr/bin/python3", "-m", "tcpscope", tool]
        assert one_line_error(cmd, EXIT_PERMISSION, {"PYTHONPATH": readable}) == message
    finally:
        shutil.rmtree(readable)


def test_a_pattern_that_matches_nothing() -> None:
    line = one_line_error([*TOOL, "tplist", "nomatch:*"], EXIT_ENVIRONMENT)
    assert line == "tcpscope tplist: no tracepoint matches nomatch:* ('tcpscope tplist' lists them all)"
