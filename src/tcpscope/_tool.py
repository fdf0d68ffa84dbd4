"""What every tool shares: the Tool interface and the event loop that runs it."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import IO, Any, ClassVar

from ._errors import PermissionProblem
from ._net import AF_INET, AF_INET6, port_bitmap
from ._object import BpfObject, ObjectSpec
from ._output import Column, CsvRenderer, JsonRenderer, Renderer, TableRenderer, time_columns

__all__ = ["Tool", "run", "require_privileges", "RING_BYTES", "POLL_SECONDS"]

log = logging.getLogger("tcpscope")

RING_BYTES = 8 << 20  # ring buffer size; the kernel wakes us at a quarter full
POLL_SECONDS = 0.1  # longest an event waits before it is printed
_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


class Tool:
    """One tool: its options, its kernel object, its columns and JSON keys."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line in 'tcpscope --help'
    description: ClassVar[str]  # the tool's --help text
    options: ClassVar[tuple[str, ...]]
    object_name: ClassVar[str]
    record: ClassVar[str]  # the event struct in the object's BTF
    tracing: ClassVar[str]  # "Tracing <this>. Ctrl-C to end."

    def __init__(self, args: argparse.Namespace, spec: ObjectSpec, start_ns: int,
                 clock_offset_ns: int | None = None) -> None:
        self.args = args
        self.spec = spec
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC; this turns it into UNIX time.
        if clock_offset_ns is None:
            clock_offset_ns = time.time_ns() - time.monotonic_ns()
        self.clock_offset_ns = clock_offset_ns
        self.start = (start_ns + clock_offset_ns) / 1e9

    def unix_time(self, ts_ns: int) -> float:
        return (ts_ns + self.clock_offset_ns) / 1e9

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

    def fields(self, record: Any) -> dict[str, Any]:
        """A decoded kernel record as the tool's JSON object."""
        raise NotImplementedError

    def exit_notes(self, counters: Any) -> list[str]:
        """What the user should know at exit besides lost events."""
        return []

    def renderer(self) -> Renderer:
        a = self.args
        if getattr(a, "json", False):
            return JsonRenderer()
        columns = time_columns(getattr(a, "time", False), getattr(a, "timestamp", False), self.start)
        columns += self.columns()
        return CsvRenderer(columns) if getattr(a, "csv", False) else TableRenderer(columns)


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


class _Stop:
    """SIGINT/SIGTERM end the loop cleanly instead of raising."""

    def __init__(self) -> None:
        self.requested = False
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


def run(tool_cls: type[Tool], args: argparse.Namespace, out: IO[str] | None = None,
        err: IO[str] | None = None) -> int:
    """Load, attach and print events until Ctrl-C, SIGTERM or -d; then report losses."""
    out = out or sys.stdout
    err = err or sys.stderr
    require_privileges()
    spec = ObjectSpec(tool_cls.object_name)
    with BpfObject(spec) as obj, _Stop() as stop:
        tool = tool_cls(args, spec, time.monotonic_ns())
        obj.set_constants({**tool.constants(), "wakeup_bytes": RING_BYTES // 4})
        obj.resize("events", RING_BYTES)
        obj.load()
        obj.attach()
        print(f"Tracing {tool.tracing}. Ctrl-C to end.", file=err, flush=True)
        try:
            _pump(obj, tool, stop, out)
        except BrokenPipeError:
            # The reader went away (e.g. '| head'): stop quietly, like other tools.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
        counters = obj.read_global(".bss", "counters", "counters")
    notes = tool.exit_notes(counters)
    if counters.lost:
        notes.insert(0, f"WARNING: {counters.lost} events were lost: the ring buffer was full")
    if counters.storage_failed:
        notes.append(f"WARNING: {counters.storage_failed} sockets could not be tracked: "
                     "no memory for per-socket state")
    for note in notes:
        print(note, file=err)
    return 0


def _pump(obj: BpfObject, tool: Tool, stop: _Stop, out: IO[str]) -> None:
    """Move events from the ring buffer to the output, a batch per wakeup."""
    ring = obj.ring_buffer()
    decode: Callable[[Any, int], Any] = tool.spec.layout(tool.record).decode
    render = tool.renderer()
    fields, line = tool.fields, render.line
    duration = tool.args.duration
    deadline = time.monotonic() + duration if duration else float("inf")
    lost_seen = 0
    header = render.header()
    if header:
        out.write(header)
        out.flush()
    while True:
        remaining = deadline - time.monotonic()
        last = stop.requested or remaining <= 0
        if not last:
            ring.wait(min(POLL_SECONDS, remaining))
        batch = ring.drain(decode)
        if batch:
            out.write("".join([line(fields(r)) for r in batch]))
            out.flush()
        if tool.args.verbose:
            lost = obj.read_global(".bss", "counters", "counters").lost
            if lost > lost_seen:
                log.warning("%d events lost so far: the ring buffer was full", lost)
                lost_seen = lost
        if last:
            return
