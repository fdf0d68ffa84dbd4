"""What every tool shares: the Tool interface and the event loop that runs it."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from importlib import resources
from typing import IO, Any, ClassVar

from .ebpf.kernel import Requirement, release, require
from .ebpf.object import BpfObject, ObjectSpec
from .errors import PermissionProblem, TcpscopeError
from .net import AF_INET, AF_INET6, port_bitmap
from .output import (
    Cell,
    Column,
    CsvRenderer,
    Field,
    JsonRenderer,
    Renderer,
    TableRenderer,
    Writer,
    time_columns,
)

__all__ = ["Tool", "StopSignals", "run", "stdout_writer", "require_privileges", "RING_BYTES", "WAKEUP_BYTES",
           "POLL_SECONDS"]

log = logging.getLogger("tcpscope")

RING_BYTES = 16 << 20  # room for bursts while the reader is busy or descheduled
WAKEUP_BYTES = 1 << 20  # the kernel wakes the reader once this much waits
POLL_SECONDS = 0.1  # otherwise the reader looks this often: the longest an event waits
BATCH = 8192  # records decoded and written at a time
_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


class Tool:
    """One tool: its options, its kernel object, its JSON fields and columns."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line in 'tcpscope --help'
    description: ClassVar[str]  # the tool's --help text
    options: ClassVar[tuple[str, ...]]
    examples: ClassVar[str]  # the end of its --help: command lines with what each does
    object_name: ClassVar[str]
    record: ClassVar[str]  # the event struct in the object's BTF
    record_fields: ClassVar[tuple[str, ...]]  # its members, in the order row_maker() unpacks them
    tracing: ClassVar[str]  # "Tracing <this>. Ctrl-C to end."
    time_always: ClassVar[bool] = False  # a TIME column even without -T (-t replaces it)
    counting: bool = False  # counts in the kernel, reported at exit, instead of events
    skip_programs: ClassVar[tuple[str, ...]] = ()  # programs of the object this tool does not need
    unused_maps: ClassVar[tuple[str, ...]] = ()  # maps it never uses: made as small as can be
    owner_programs: ClassVar[tuple[str, ...]] = ()  # programs that only follow owners: --no-owner skips them
    requires: ClassVar[tuple[Requirement, ...]] = ()  # refused, in one line, on a kernel without these
    # What the tool cannot see on a kernel without a requirement: said at start.
    degraded: ClassVar[tuple[tuple[Requirement, str], ...]] = ()
    skipped: ClassVar[str] = "events"  # what a program the kernel skipped may have cost, in words
    cells: ClassVar[tuple[Cell, ...]]  # what a row holds: fields, and groups of them
    fields: ClassVar[tuple[Field, ...]]  # the JSON keys, in order (cells flattened)

    def __init__(self, args: argparse.Namespace, spec: ObjectSpec, start_ns: int,
                 clock_offset_ns: int | None = None) -> None:
        self.args = args
        self.spec = spec
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC; this turns it into UNIX time.
        if clock_offset_ns is None:
            clock_offset_ns = time.time_ns() - time.monotonic_ns()
        self.clock_offset_ns = clock_offset_ns
        self.start = (start_ns + clock_offset_ns) / 1e9
        self.layout = spec.layout(self.record)
        if self.layout.fields != self.record_fields or self.record_fields[0] != "ts_ns":
            raise TcpscopeError(f"{spec.name}.bpf.o has struct {self.record} {self.layout.fields}, "
                                f"but the {self.name} tool reads {self.record_fields}")

    @property
    def wide(self) -> bool:
        """Wide columns: asked for (-w), or needed: CSV, and -6 (an IPv6 address does not
        fit the 15 characters of an IPv4 one; with both families, -w makes room)."""
        a = self.args
        return bool(getattr(a, "wide", False) or getattr(a, "csv", False) or getattr(a, "ipv6", False))

    @property
    def ring_bytes(self) -> int:
        mb = getattr(self.args, "ring_mb", None)
        return mb << 20 if mb else RING_BYTES

    def constants(self) -> dict[str, Any]:
        """Kernel-side filters from the shared options."""
        a = self.args
        values: dict[str, Any] = {}
        if getattr(a, "pid", None):
            values["filter_pid"] = a.pid
        if getattr(a, "ipv4", False) or getattr(a, "ipv6", False):
            values["filter_family"] = AF_INET if a.ipv4 else AF_INET6
        if getattr(a, "netns", None):
            values["filter_netns"] = a.netns
        for option, name in (("localport", "lports"), ("remoteport", "rports")):
            ports = getattr(a, option, None)
            if ports:
                values[f"filter_{name}_on"] = 1
                values[f"filter_{name}"] = port_bitmap(ports)
        return values

    def columns(self) -> list[Column]:
        raise NotImplementedError

    def row_maker(self, render: Renderer) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
        """A function from a raw record (its members in record_fields order)
        to a row for render: a value per cell, passed through
        render.convert(cell name) where a cell is a group, nullable or text."""
        raise NotImplementedError

    def decoders(self) -> dict[str, Callable[[bytes], tuple[Any, ...]]]:
        """For each group in cells, raw bytes -> the values of its fields."""
        return {}

    def exit_notes(self, counters: Any) -> list[str]:
        """What the user should know at exit besides lost events."""
        return []

    def count_report(self, obj: BpfObject) -> str:
        """The counts of a counting run, printed at exit."""
        return ""

    def renderer(self) -> Renderer:
        a = self.args
        if getattr(a, "json", False):
            return JsonRenderer(self.cells, self.decoders())
        timestamp = getattr(a, "timestamp", False)
        wall = getattr(a, "time", False) or (self.time_always and not timestamp)
        columns = time_columns(wall, timestamp, self.start)
        columns += self.columns()
        if getattr(a, "csv", False):
            return CsvRenderer(columns, self.cells, self.decoders())
        return TableRenderer(columns, self.cells, self.decoders())


def object_spec(name: str) -> ObjectSpec:
    """The tools' kernel object NAME (src/tcpscope/bpf/NAME.bpf.o, built from bpf/NAME.bpf.c)."""
    return ObjectSpec(str(resources.files("tcpscope") / "bpf" / f"{name}.bpf.o"))


def require_privileges() -> None:
    """Root, or the capabilities that loading tracing programs needs."""
    caps = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                caps = int(line.split()[1], 16)
    has = lambda cap: bool(caps >> cap & 1)  # noqa: E731
    if not (has(_CAP_SYS_ADMIN) or (has(_CAP_BPF) and has(_CAP_PERFMON))):
        raise PermissionProblem("tcpscope needs root (or CAP_BPF and CAP_PERFMON): run it with sudo")


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP (the terminal went away) end the loop
    cleanly, with the summary, instead of killing the process."""

    def __init__(self) -> None:
        self.requested = False
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


def stdout_writer() -> Writer:
    return Writer(sys.stdout.fileno() if sys.stdout is not None else None)


def run(tool_cls: type[Tool], args: argparse.Namespace, out: Writer | None = None,
        err: IO[str] | None = None) -> int:
    """Load, attach and print events until Ctrl-C, SIGTERM, SIGHUP, -d or the
    reader going away; then report losses."""
    out = out or stdout_writer()
    err = err or sys.stderr
    require_privileges()
    require(tool_cls.requires)
    for requirement, lost in tool_cls.degraded:
        if not requirement.present():
            print(f"tcpscope {tool_cls.name}: note: {lost} on this kernel ({release()}): that needs "
                  f"{requirement}", file=err)
    spec = object_spec(tool_cls.object_name)
    with BpfObject(spec) as obj, StopSignals() as stop:
        tool = tool_cls(args, spec, time.monotonic_ns())
        obj.set_constants({**tool.constants(), "wakeup_bytes": WAKEUP_BYTES})
        obj.resize("events", tool.ring_bytes)
        # Owners are needed to show them or to filter by them; counts show none.
        no_owner = bool(tool.owner_programs) and (
            getattr(args, "no_owner", False) or (tool.counting and not getattr(args, "pid", None)))
        obj.skip(tool.skip_programs + (tool.owner_programs if no_owner else ()))
        for name in tool.unused_maps + (("socks", "listener_owners") if no_owner else ()):
            obj.resize(name, 1)
        obj.load()
        obj.attach()
        print(f"Tracing {tool.tracing}. Ctrl-C to end.", file=err, flush=True)
        try:
            if tool.counting:
                _wait(tool, stop, out)
                out.write(tool.count_report(obj))
            else:
                _pump(obj, tool, stop, out)
        except BrokenPipeError:
            pass  # the reader went away (e.g. '| head'): stop quietly, like other tools
        counters = obj.read_global(".bss", "counters", "counters")
        misses = obj.recursion_misses()
    notes = tool.exit_notes(counters)
    if misses:
        notes.insert(0, _skipped(misses, tool.skipped))
    if counters.lost:
        notes.insert(0, f"WARNING: {counters.lost} events were lost: no room in the ring buffers")
    if counters.storage_failed:
        notes.append(f"WARNING: {counters.storage_failed} sockets could not be tracked: "
                     "more sockets than the state map holds, or no memory")
    for note in notes:
        print(note, file=err)
    return 0


def _wait(tool: Tool, stop: StopSignals, out: Writer) -> None:
    """Until Ctrl-C, SIGTERM, SIGHUP, -d or the reader going away."""
    duration = tool.args.duration
    deadline = time.monotonic() + duration if duration else float("inf")
    while not stop.requested and time.monotonic() < deadline and not out.reader_gone():
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _pump(obj: BpfObject, tool: Tool, stop: StopSignals, out: Writer) -> None:
    """Move events from the ring buffers to the output, in batches."""
    ring, spill = obj.ring_buffer("events"), obj.ring_buffer("spill")
    render = tool.renderer()
    layout, row, line = tool.layout, tool.row_maker(render), render.line
    duration = tool.args.duration
    deadline = time.monotonic() + duration if duration else float("inf")
    lost_seen = misses_seen = 0
    per_wakeup = tool.ring_bytes // layout.size  # a ring's worth, so that the loop always comes back
    out.write(render.header() or "")
    while True:
        remaining = deadline - time.monotonic()
        last = stop.requested or remaining <= 0 or out.reader_gone()
        if not last:
            ring.wait(min(POLL_SECONDS, remaining))
        drained = 0
        while drained < per_wakeup:
            batch = ring.drain(layout, BATCH)
            # Read after the main ring, the spill ring holds every event that
            # precedes, on the same socket, one already read: merge by time.
            spilled = spill.drain(layout)
            if spilled:
                batch = sorted(batch + spilled, key=_timestamp)
            if not batch:
                break
            out.write("".join(map(line, map(row, batch))))
            drained += len(batch)
        if tool.args.verbose:
            lost = obj.read_global(".bss", "counters", "counters").lost
            if lost > lost_seen:
                log.warning("%d events lost so far: no room in the ring buffers", lost)
                lost_seen = lost
            misses = obj.recursion_misses()
            if misses > misses_seen:
                log.warning("so far: %s", _skipped(misses, tool.skipped).removeprefix("WARNING: "))
                misses_seen = misses
        if last:
            return


def _skipped(misses: int, what: str) -> str:
    return (f"WARNING: the kernel skipped tcpscope's programs {misses} times (a tracepoint fired on a CPU "
            f"where the program was already running): up to {misses} {what} may be missing")


def _timestamp(record: tuple[Any, ...]) -> Any:
    return record[0]  # every event struct starts with ts_ns
