"""The one option registry: a flag means the same thing in every tool."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .net import (
    parse_count,
    parse_milliseconds,
    parse_netns,
    parse_pid,
    parse_ports,
    parse_ring_mb,
    parse_seconds,
)

__all__ = ["Option", "OPTIONS", "EXCLUSIVE", "add_options", "checked"]


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    dest: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Turn a UsageError into the message argparse shows for a bad value."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


_FLAG = {"action": "store_true"}

OPTIONS: dict[str, Option] = {
    o.dest: o
    for o in (
        Option(("-T", "--time"), "time", "add a TIME column (wall clock, HH:MM:SS)", _FLAG),
        Option(("-t", "--timestamp"), "timestamp", "add a TIME(s) column (seconds since tracing began)",
               _FLAG),
        Option(("-w", "--wide"), "wide", "wide columns: IP version, full addresses and command names", _FLAG),
        Option(("-s", "--csv"), "csv", "comma-separated values, exact numbers (bytes, not KB)", _FLAG),
        Option(("-j", "--json"), "json", "JSON lines, one object per event (keys in docs/TOOL.md)", _FLAG),
        Option(("-p", "--pid"), "pid", "only sockets owned by this process ID",
               {"type": checked(parse_pid), "metavar": "PID"}),
        Option(("-L", "--localport"), "localport", "only these local ports, e.g. 80,443",
               {"type": checked(parse_ports), "metavar": "PORTS"}),
        Option(("-D", "--remoteport"), "remoteport", "only these remote ports, e.g. 80,443",
               {"type": checked(parse_ports), "metavar": "PORTS"}),
        Option(("-4", "--ipv4"), "ipv4", "IPv4 only", _FLAG),
        Option(("-6", "--ipv6"), "ipv6", "IPv6 only", _FLAG),
        Option(("-N", "--netns"), "netns",
               "only sockets in this network namespace: an inode number or a file such as "
               "/var/run/netns/NAME or /proc/PID/ns/net",
               {"type": checked(parse_netns), "metavar": "NETNS"}),
        Option(("-d", "--duration"), "duration", "stop after SECONDS",
               {"type": checked(parse_seconds), "metavar": "SECONDS"}),
        Option(("-S", "--sequence"), "sequence", "add a SEQ column: the segment's first sequence number",
               _FLAG),
        Option(("-c", "--count"), "count", "count per flow in the kernel instead; print the counts at exit",
               _FLAG),
        Option(("--min-ms",), "min_ms", "only connects that took at least this many milliseconds",
               {"type": checked(parse_milliseconds), "metavar": "MS"}),
        Option(("--stack",), "stack", "add each event's kernel stack", _FLAG),
        Option(("-K", "--kernel-stack"), "kernel_stack", "print each event's kernel stack", _FLAG),
        Option(("-U", "--user-stack"), "user_stack",
               "print each event's user stack, as far as the kernel can walk it: that needs frame "
               "pointers in the program (most distributions build without them)", _FLAG),
        Option(("-C", "--cpu"), "cpu", "add a CPU column (JSON has it always)", _FLAG),
        Option(("--tid",), "tid", "only events of this thread (bcc's -L, which is the local port here)",
               {"type": checked(parse_pid), "metavar": "TID"}),
        Option(("--no-owner",), "no_owner",
               "do not follow sockets' owners (PID and COMM stay unknown), which saves the per-connection "
               "cost of following them on connection-heavy hosts", _FLAG),
        Option(("-M", "--max-events"), "max_events", "stop after N events",
               {"type": checked(parse_count), "metavar": "N"}),
        Option(("--ring-mb",), "ring_mb",
               "the ring buffer's size in MiB, a power of two (default 16; trace 8): room for bursts the "
               "reader cannot keep up with, which are otherwise lost (and counted)",
               {"type": checked(parse_ring_mb), "metavar": "MB"}),
        Option(("-v", "--verbose"), "verbose",
               "show libbpf's log (-vv: all of it), and lost and skipped events as they happen",
               {"action": "count", "default": 0}),
    )
}  # fmt: skip

# Options that cannot be combined.
EXCLUSIVE = (("ipv4", "ipv6"), ("csv", "json"), ("pid", "no_owner"))


def add_options(parser: argparse.ArgumentParser, names: Iterable[str], helps: dict[str, str] | None = None
                ) -> None:
    """Add the named options; helps replaces an option's help where a command
    gives it a more precise meaning (-v: what more it shows)."""
    names = list(names)
    grouped: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for pair in EXCLUSIVE:
        if all(n in names for n in pair):
            group = parser.add_mutually_exclusive_group()
            for n in pair:
                grouped[n] = group
    for name in names:
        option = OPTIONS[name]
        target: Any = grouped.get(name, parser)
        text = (helps or {}).get(name, option.help)
        target.add_argument(*option.flags, dest=option.dest, help=text, **option.kwargs)
