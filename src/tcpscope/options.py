"""The one option registry: a flag means the same thing in every tool, and a
library keyword is checked by the same parser as the flag it stands for. (The
command line turns the registry into argparse options: cli.py.)"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import Config
from .errors import UsageError
from .net import (
    parse_count,
    parse_file,
    parse_group_key,
    parse_image_path,
    parse_interval,
    parse_listen,
    parse_milliseconds,
    parse_netns,
    parse_pid,
    parse_ports,
    parse_ring_mb,
    parse_seconds,
)

__all__ = ["Option", "OPTIONS", "make_config", "library_values"]


@dataclass(frozen=True)
class Option:
    """A command-line option (flags) or argument (no flags), and the Config
    field it sets (dest), which is also its keyword in the library."""

    flags: tuple[str, ...]
    dest: str
    help: str
    parse: Callable[[str], Any] | None = None  # the value's parser; None: a flag
    metavar: str | None = None
    const: Any = True  # what the flag sets
    nargs: str | None = None  # an argument's: "?", "*" or "+"
    output: bool = False  # how the command line shows events: not a library keyword

    @property
    def name(self) -> str:
        """The registry's name: the long flag's (--no-owner: no_owner), else dest."""
        return self.flags[-1].lstrip("-").replace("-", "_") if self.flags else self.dest


OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option(("-T", "--time"), "time", "add a TIME column (wall clock, HH:MM:SS)", output=True),
        Option(("-t", "--timestamp"), "timestamp", "add a TIME(s) column (seconds since tracing began)",
               output=True),
        Option(("-w", "--wide"), "wide", "wide columns: IP version, full addresses and command names",
               output=True),
        Option(("-s", "--csv"), "format", "comma-separated values, exact numbers (bytes, not KB)",
               const="csv", output=True),
        Option(("-j", "--json"), "format", "JSON lines, one object per event (keys in docs/TOOL.md)",
               const="json", output=True),
        Option(("-p", "--pid"), "pid", "only sockets owned by this process ID", parse_pid, "PID"),
        Option(("-L", "--localport"), "local_ports", "only these local ports, e.g. 80,443", parse_ports,
               "PORTS"),
        Option(("-D", "--remoteport"), "remote_ports", "only these remote ports, e.g. 80,443", parse_ports,
               "PORTS"),
        Option(("-4", "--ipv4"), "family", "IPv4 only", const=4),
        Option(("-6", "--ipv6"), "family", "IPv6 only", const=6),
        Option(("-N", "--netns"), "netns",
               "only sockets in this network namespace: an inode number or a file such as "
               "/var/run/netns/NAME or /proc/PID/ns/net", parse_netns, "NETNS"),
        Option(("-d", "--duration"), "duration", "stop after SECONDS", parse_seconds, "SECONDS"),
        Option(("-S", "--sequence"), "sequence", "add a SEQ column: the segment's first sequence number"),
        Option(("-c", "--count"), "count", "count per flow in the kernel instead; print the counts at exit"),
        Option(("--min-ms",), "min_ms", "only connects that took at least this many milliseconds",
               parse_milliseconds, "MS"),
        Option(("--stack",), "stack", "add each event's kernel stack"),
        Option(("-K", "--kernel-stack"), "kernel_stack", "print each event's kernel stack"),
        Option(("-U", "--user-stack"), "user_stack",
               "print each event's user stack, as far as the kernel can walk it: that needs frame "
               "pointers in the program (most distributions build without them)"),
        Option(("-C", "--cpu"), "cpu", "add a CPU column (JSON has it always)", output=True),
        Option(("--tid",), "tid", "only events of this thread (bcc's -L, which is the local port here)",
               parse_pid, "TID"),
        Option(("--no-owner",), "owners",
               "do not follow sockets' owners (PID and COMM stay unknown), which saves the per-connection "
               "cost of following them on connection-heavy hosts", const=False),
        Option(("-M", "--max-events"), "max_events", "stop after N events", parse_count, "N"),
        Option(("--ring-mb",), "ring_mb",
               "the ring buffer's size in MiB, a power of two (default 16; trace 8): room for bursts the "
               "reader cannot keep up with, which are otherwise lost (and counted)", parse_ring_mb, "MB"),
        Option(("--by",), "by", "a histogram per remote address (raddr) or local port (lport)",
               parse_group_key, "KEY"),
        Option(("-m", "--milliseconds"), "milliseconds", "histogram buckets of milliseconds (default µs)"),
        Option(("-e", "--events"), "events",
               "one line per change, instead of the time in each state per flow"),
        Option(("-i", "--interval"), "interval",
               "an interval: seconds (e.g. 5 or 0.5) or with a unit, 100ms (each tool says what it does "
               "per interval)", parse_interval, "INTERVAL"),
        Option(("--listen",), "listen",
               "serve on this ADDR:PORT (default 127.0.0.1:10135; :10135 for every address)", parse_listen,
               "ADDR:PORT"),
        Option(("--web-config",), "web_config",
               "TLS and basic auth, from a web configuration file in the format of Prometheus' exporters "
               "(tls_server_config, basic_auth_users)", parse_file, "FILE"),
        Option(("--port-labels",), "port_labels",
               "give these ports a port label of their own (every other port: other), e.g. 80,443",
               parse_ports, "PORTS"),
        Option(("-n", "--iterations"), "iterations", "stop after N interval reports", parse_count, "N"),
        Option(("--scroll",), "scroll", "print each report below the last instead of redrawing the screen",
               output=True),
        Option(("--plot",), "plot", "at the end, draw the samples to this image (.png, .svg or .pdf); needs "
               "matplotlib: pip install 'tcpscope[plot]'", parse_image_path, "FILE", output=True),
        Option(("-v", "--verbose"), "verbose",
               "show libbpf's log (-vv: all of it), and lost and skipped events as they happen", output=True),
    )
}  # fmt: skip

def make_config(values: Mapping[str, Any]) -> Config:
    """A Config from checked values by dest (None: not given)."""
    return Config.from_values({k: v for k, v in values.items() if v is not None and k != "tool"})


def library_values(tool: str, options: Iterable[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """The library's keywords, checked by the same parsers as the command line's
    values: a value is written as its flag's text and parsed (ports [80, 443]
    as "80,443"), so that both say the same thing about the same mistake."""
    known = {o.dest: o for o in options if not o.output and o.dest != "duration"}
    values: dict[str, Any] = {}
    for key, value in given.items():
        option = known.get(key)
        if option is None:
            raise UsageError(f"{tool} has no option {key!r} (it has: {', '.join(sorted(known))})")
        if option.parse is not None:
            values[key] = option.parse(_as_text(value))
        elif option.nargs:
            values[key] = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
        elif key == "family":
            if value not in (4, 6) or isinstance(value, bool):
                raise UsageError(f"family {value!r}: give 4 or 6")
            values[key] = value
        elif not isinstance(value, bool):
            raise UsageError(f"{key}={value!r}: give True or False")
        else:
            values[key] = value
    return values


def _as_text(value: Any) -> str:
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, Iterable):
        return ",".join(str(v) for v in value)
    return str(value)
