"""Property-based fuzzing of what a user can type: the command line of every
tool, and trace's probe, filter and format language. Whatever the input, it
either works or fails with one UsageError (one line, exit status 2), in
bounded time and memory; never an internal error.

Each property runs twice: with a fixed seed (the same cases every run) and
with a random one, which Hypothesis prints when it finds a failure
('--hypothesis-seed=N' reproduces it)."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tcpscope.cli import parse_command_line
from tcpscope.errors import UsageError
from tcpscope.options import make_config
from tcpscope.tools import OBJECT_TOOLS
from tcpscope.tools.trace import compile_program, message, parse_probe, record_bytes
from tests.unit.test_trace import formats

FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
FIXED_SEED = 20261201

# Pieces users type: every flag of the registry, and values good and bad.
FLAGS = ["-T", "-t", "-w", "-s", "-j", "-p", "-L", "-D", "-4", "-6", "-N", "-d", "-S", "-c", "--min-ms",
         "--stack", "--no-owner", "-M", "--ring-mb", "-v", "-i", "--plot", "-e", "--by", "-m", "--", "-h"]
VALUES = ["0", "1", "80,443", "65535", "65536", "-5", "1e15", "nan", "inf", "1e300", "99999999999999999999",
          "4294967296", "0x10", "", " ", ",", "abc", "\u00b2", "9" * 50, "/proc/self/ns/net", "/etc/hostname",
          "12345", "2", "0.5", "16", "3", "100ms", "0ms", "1e-9s", "/tmp/tcpscope-fuzz.png", "x.gif", "raddr",
          "lport"]
argument = st.one_of(st.sampled_from(FLAGS), st.sampled_from(VALUES), st.text(max_size=12))


def parse(argv: list[str]) -> tuple[Any, str, int | None]:
    """Parse as the CLI does: (args or None, what it said on stderr, exit code if it exited)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return parse_command_line(argv), err.getvalue(), None
        except SystemExit as exc:
            return None, err.getvalue(), int(exc.code or 0)


def check_command_line(tool: str, rest: list[str]) -> None:
    args, said, code = parse([tool, *rest])
    if args is None:
        assert code in (0, 2), (code, said)  # --help, or one line saying what is wrong
        assert code == 0 or said.count("\n") == 1, said
        return
    config = make_config(vars(args))
    if tool in OBJECT_TOOLS:  # what it would hand the kernel encodes: no value too large for its slot
        cls = OBJECT_TOOLS[tool]
        cls(config).spec.rodata(cls(config).constants())


@pytest.mark.parametrize("tool", [*OBJECT_TOOLS, "tplist"])
@pytest.mark.parametrize("random", [False, True], ids=["fixed-seed", "random-seed"])
def test_command_lines(tool: str, random: bool) -> None:
    @FUZZ
    @given(st.lists(argument, max_size=6))
    def check(rest: list[str]) -> None:
        check_command_line(tool, rest)

    (check if random else seed(FIXED_SEED)(check))()


# The probe language: pieces of it, and anything at all.
FIELDS = ["args->skaddr", "args->oldstate", "args->newstate", "args->sport", "args->dport", "args->family",
          "args->protocol", "args->saddr", "args->saddr_v6", "args->daddr", "args->nosuch", "args", "sport"]
TOKENS = ["==", "!=", "<", "<=", ">", ">=", "&", "&&", "||", "!", "(", ")", "-1", "0", "7",
          "0xffff888153955c80", "18446744073709551616", "TCP_CLOSE", "TCP_NOPE", "9" * 30, "-", "x", '"', ","]
CONVERSIONS = ["%d", "%u", "%x", "%s", "%p", "%c", "%llx", "%-5hu", "%999999999d", "%.300s", "%%", "%q", "%",
               "%5.2d", "%#o", "%" + "9" * 40 + "d"]
filter_text = st.lists(st.one_of(st.sampled_from(FIELDS), st.sampled_from(TOKENS)), max_size=9).map(" ".join)
format_text = st.lists(st.one_of(st.sampled_from(CONVERSIONS), st.text(max_size=4)), max_size=5).map("".join)
probe_text = st.one_of(
    st.builds(lambda event, flt, fmt, args: f"{event} ({flt}) \"{fmt}\"{''.join(', ' + a for a in args)}",
              st.sampled_from(["t:sock:inet_sock_set_state", "t:tcp:tcp_probe", "t:tcp:tcp_send_reset"]),
              filter_text, format_text, st.lists(st.sampled_from(FIELDS), max_size=4)),
    st.builds(lambda head, tail: head + tail,
              st.sampled_from(["t:sock:inet_sock_set_state", "t:", "p:tcp_sendmsg", "t:no:such", ""]),
              st.text(max_size=40)),
)


def check_probe(text: str) -> None:
    try:
        probe = parse_probe(text, formats)
    except UsageError as exc:
        assert "\n" not in str(exc) or text in str(exc), exc  # one line (or the user's own text)
        return
    assert len(compile_program(probe, 0, 3, 4, None)) % 8 == 0
    line = message(probe, bytes(record_bytes(probe.event)))
    assert len(line) < 65536  # widths are capped


@pytest.mark.parametrize("random", [False, True], ids=["fixed-seed", "random-seed"])
def test_probes(random: bool) -> None:
    @settings(max_examples=1500, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
    @given(probe_text)
    def check(text: str) -> None:
        check_probe(text)

    (check if random else seed(FIXED_SEED)(check))()
