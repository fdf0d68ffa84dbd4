"""The command line, run for real: bad input gets one line and exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tcpscope.options import OPTIONS
from tcpscope.tool import object_spec
from tcpscope.tools import OBJECT_TOOLS


def tcpscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcpscope", *args], capture_output=True, text=True,
                          timeout=30)


@pytest.mark.parametrize(
    "args, message",
    [
        (["life", "-L", "0"], "port 0 is out of range (1-65535)"),
        (["life", "-L", "70000"], "port 70000 is out of range (1-65535)"),
        (["states", "-L", "abc"], "'abc' is not a port number"),
        (["states", "-D", "80,"], "'' is not a port number"),
        (["life", "-4", "-6"], "-6/--ipv6: not allowed with argument -4/--ipv4"),
        (["life", "-s", "-j"], "not allowed with argument"),
        (["life", "-N", "/nonexistent/netns"], "cannot open network namespace '/nonexistent/netns'"),
        (["life", "-N", "/etc/hostname"], "is not a network namespace"),
        (["life", "-N", "0"], "is not a namespace inode number"),
        (["life", "-p", "abc"], "'abc' is not a process ID"),
        (["life", "-d", "0"], "is not a number of seconds"),
        (["life", "--bogus"], "unrecognized arguments: --bogus"),
        (["nosuchtool"], "invalid choice: 'nosuchtool'"),
        (["accept", "-L", "65536"], "port 65536 is out of range (1-65535)"),
        (["accept", "-p", "0"], "'0' is not a process ID"),
        (["accept", "-c"], "unrecognized arguments: -c"),
        (["accept", "-N", "/etc/hostname"], "is not a network namespace"),
        # Numbers too large, or not numbers at all: never an internal error.
        (["life", "-p", "99999999999999999999"], "is not a process ID"),
        (["retrans", "-p", "4294967296"], "is not a process ID: this system's are at most"),
        (["life", "-p", "9" * 5000], "is not a process ID"),
        (["trace", "-p", "99999999999999999999", "t:sock:inet_sock_set_state"], "is not a process ID"),
        (["connect", "--min-ms", "1e15"], "is not a number of milliseconds"),
        (["connlat", "1e300"], "is not a number of milliseconds"),
        (["connlat", "nan"], "is not a number of milliseconds"),
        (["connlat", "--", "-5"], "is not a number of milliseconds"),
        (["life", "-L", "\u00b2"], "is not a port number"),
        (["life", "-N", "12345"], "no network namespace 12345 is in use"),
        # A tool's own options are its to refuse.
        (["retrans", "--bogus"], "tcpscope retrans: unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    proc = tcpscope(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "--help" in lines[0]


@pytest.mark.parametrize("tool", OBJECT_TOOLS.values(), ids=lambda t: t.name)
def test_help_lists_every_option_and_the_limits(tool: type) -> None:
    proc = tcpscope(tool.name, "--help")
    assert proc.returncode == 0
    for name in tool.options:
        for flag in OPTIONS[name].flags:
            assert flag in proc.stdout
    assert "exit status" in proc.stdout
    # Examples, bcc's habit: each a command line of this tool.
    examples = proc.stdout.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(examples) >= 3 and all(e.startswith(f"  tcpscope {tool.name}") for e in examples)
    # It names the tracepoint it is about.
    events = [point.split("/")[1] for point in object_spec(tool.object_name).attach_points]
    assert any(f":{event}" in proc.stdout for event in events)


def test_version_and_module_entry_point() -> None:
    proc = tcpscope("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("tcpscope ")


@pytest.mark.parametrize("command", ["tplist", "trace"])
def test_help_of_tplist_and_trace_ends_with_examples(command: str) -> None:
    proc = tcpscope(command, "--help")
    examples = proc.stdout.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert proc.returncode == 0 and len(examples) >= 3
    assert all(e.startswith(f"  tcpscope {command}") for e in examples)


def test_the_library_names_every_command() -> None:
    import tcpscope
    from tcpscope.tools import TOOLS

    assert tcpscope.TOOLS == tuple(TOOLS)
