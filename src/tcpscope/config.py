"""What a tool is asked to do, as small frozen dataclasses: built by the
command line and by the library alike (options.make_config), so that tools
never see argparse and a value is checked the same way wherever it comes from."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .errors import UsageError

__all__ = ["Filters", "Output", "Config", "FORMATS"]

Format = Literal["table", "csv", "json"]
FORMATS: tuple[Format, ...] = ("table", "csv", "json")


@dataclass(frozen=True)
class Filters:
    """Which events to keep, decided in the kernel."""

    pid: int | None = None  # the socket's owner (trace: the task on-CPU)
    tid: int | None = None  # trace: the thread on-CPU
    local_ports: frozenset[int] = frozenset()
    remote_ports: frozenset[int] = frozenset()
    family: Literal[4, 6] | None = None
    netns: int | None = None  # the namespace's inode number


@dataclass(frozen=True)
class Output:
    """How the command line shows events (the library hands out dicts instead)."""

    format: Format = "table"
    time: bool = False  # a TIME column (wall clock)
    timestamp: bool = False  # a TIME(s) column (seconds since tracing began)
    wide: bool = False
    cpu: bool = False
    verbose: int = 0
    plot: str | None = None  # an image file to draw the samples to, at the end
    scroll: bool = False  # top: print reports one below the other, not over the last


@dataclass(frozen=True)
class Config:
    """One run of one tool."""

    filters: Filters = field(default_factory=Filters)
    output: Output = field(default_factory=Output)
    duration: float | None = None  # seconds; None: until stopped
    max_events: int | None = None
    ring_mb: int | None = None  # None: the tool's default
    count: bool = False  # count in the kernel instead of reporting events
    events: bool = False  # cong: an event per change instead of its accounting
    owners: bool = True  # follow sockets' owners (--no-owner: False)
    sequence: bool = False
    stack: bool = False
    kernel_stack: bool = False
    user_stack: bool = False
    min_ms: float = 0.0
    interval: float | None = None  # seconds
    iterations: int | None = None  # stop after this many interval reports
    by: str | None = None  # rtt: a histogram per "raddr" or "lport"; top: a row per "pid"
    milliseconds: bool = False  # rtt: buckets of ms
    listen: tuple[str, int] | None = None  # serve: the address to serve on (None: net.DEFAULT_LISTEN)
    web_config: str | None = None  # serve: TLS and basic auth
    port_labels: frozenset[int] = frozenset()  # serve: ports with a label of their own
    probes: tuple[str, ...] = ()  # trace: what to trace
    patterns: tuple[str, ...] = ()  # tplist: which tracepoints

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Config:
        """From flat option values (each already checked, see options.py), by name."""
        parts: dict[str, dict[str, Any]] = {"filters": {}, "output": {}, "": {}}
        for part, names in (("filters", _FILTERS), ("output", _OUTPUT)):
            parts[part] = {k: v for k, v in values.items() if k in names}
        rest = {k: v for k, v in values.items() if k not in _FILTERS and k not in _OUTPUT}
        config = cls(filters=Filters(**parts["filters"]), output=Output(**parts["output"]), **rest)
        if config.filters.pid is not None and not config.owners:
            raise UsageError("a PID filter needs sockets' owners: drop --no-owner (owners=False)")
        return config


_FILTERS = frozenset(f.name for f in fields(Filters))
_OUTPUT = frozenset(f.name for f in fields(Output))
