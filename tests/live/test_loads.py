"""Every tool, with every option that changes its kernel programs, loads on
this kernel, or refuses in one line naming the kernel it needs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tcpscope.tools import OBJECT_TOOLS
from tests.live.conftest import KERNEL

# Options that change what the kernel runs, as a user would give them. All
# filters at once: each turns on its branch of the programs.
FILTERS = {"pid": ["-p", "1"], "localport": ["-L", "80,443"], "remoteport": ["-D", "8080"],
           "ipv4": ["-4"], "netns": ["-N", "/proc/self/ns/net"]}
MODES = {"count": ["-c"], "min_ms": ["--min-ms", "5"], "stack": ["--stack"], "sequence": ["-S"],
         "no_owner": ["--no-owner"], "interval": ["-i", "100ms"], "events": ["-e"],
         "by": ["--by"], "milliseconds": ["-m"], "port_labels": ["--port-labels", "80"]}
# What a tool needs besides: connlat's minimum latency; a free port for serve.
EXTRA = {"connlat": ["5"], "serve": ["--listen", "127.0.0.1:0"]}
# The oldest kernel each tool loads on, where that is newer than the oldest the matrix runs.
NEEDS = {"accept": (6, 2), "top": (6, 3)}


def _runs() -> list[tuple[str, list[str]]]:
    runs = []
    for name, tool in OBJECT_TOOLS.items():
        filters = [arg for option, args in FILTERS.items() if option in tool.options for arg in args]
        runs.append((name, filters))
        for option, args in MODES.items():
            if option in tool.options:
                if option == "by":
                    args = [*args, tool.group_keys[0]]
                # --no-owner cannot be combined with -p: owners are what -p filters on.
                runs.append((name, [*(filters[2:] if option == "no_owner" else filters), *args]))
    return [(name, [*args, *EXTRA.get(name, [])]) for name, args in runs]


@pytest.mark.parametrize(("tool", "args"), _runs(), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_loads_or_refuses(tool: str, args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "tcpscope", tool, *args, "-d", "0.5"], capture_output=True,
                          text=True, timeout=120)
    needed = NEEDS.get(tool)
    if needed and KERNEL < needed:
        assert proc.returncode == 4 and proc.stderr.count("\n") == 1, proc.stderr
        assert f"needs Linux {needed[0]}.{needed[1]} or newer" in proc.stderr
        assert os.uname().release in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        ready = "Serving " if tool == "serve" else "Tracing "
        assert ready in proc.stderr and "WARNING" not in proc.stderr, proc.stderr
