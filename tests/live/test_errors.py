"""Bad environments, made for real: one clear line on stderr and the documented exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tcpscope._errors import EXIT_ENVIRONMENT, EXIT_KERNEL, EXIT_PERMISSION, EnvironmentProblem
from tcpscope._object import BpfObject, ObjectSpec

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
    spec = ObjectSpec("life")
    spec.attach_points = ["tp_btf/no_such_tracepoint"]
    with pytest.raises(EnvironmentProblem, match="no tracepoint 'no_such_tracepoint'"):
        BpfObject(spec)
