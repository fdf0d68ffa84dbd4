"""tcpscope tplist lists exactly what this kernel's tracefs has."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tcpscope.ebpf.tracefs import tracefs_root


def tplist(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "tcpscope", "tplist", *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tracefs_events(*categories: str, prefix: str = "") -> list[str]:
    events = os.path.join(tracefs_root(), "events")
    return sorted(f"{c}:{e}" for c in categories for e in os.listdir(os.path.join(events, c))
                  if e.startswith(prefix) and os.path.isdir(os.path.join(events, c, e)))


def test_seed_example_lists_exactly_tracefs() -> None:
    """tplist -v 'tcp:*' 'sock:inet*': every such tracepoint, with the fields its format
    file declares (read here with a plain split, not tcpscope's parser)."""
    expected = ""
    for name in sorted(tracefs_events("sock", prefix="inet") + tracefs_events("tcp")):
        with open(os.path.join(tracefs_root(), "events", *name.split(":"), "format")) as f:
            declared = [part.split(";")[0].removeprefix("field:") for part in f.read().split("\t")
                        if part.startswith("field:") and "common_" not in part.split(";")[0]]
        expected += name + "\n" + "".join(f"    {d};\n" for d in declared)
    assert tplist("-v", "tcp:*", "sock:inet*") == expected
    assert "tcp:tcp_probe\n" in expected and "sock:inet_sock_set_state\n" in expected


def test_all_and_json() -> None:
    everything = tplist().splitlines()
    events = os.path.join(tracefs_root(), "events")
    count = sum(1 for c in os.listdir(events) if os.path.isdir(os.path.join(events, c)) and c != "ftrace"
                for e in os.listdir(os.path.join(events, c)) if os.path.isdir(os.path.join(events, c, e)))
    assert len(everything) == count
    records = [json.loads(line) for line in tplist("-j", "sock:inet_sock_set_state").splitlines()]
    assert len(records) == 1 and records[0]["symbols"]["newstate"]["1"] == "TCP_ESTABLISHED"
