"""The one tracing loop, and the library's entry points.

A Tracer is a started tool: what it loaded into the kernel, its records as
they arrive, its counts. The command line renders the rows it hands out as a
table, CSV or JSON lines; the library as dicts (tcpscope.open, tcpscope.trace).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from .errors import UsageError
from .options import library_values, make_config
from .tool import Source, Tool

__all__ = ["Tracer", "open", "trace", "POLL_SECONDS"]

POLL_SECONDS = 0.1  # the reader looks this often when the kernel has not woken it: the longest an event waits


def _never() -> bool:
    return False


class Tracer:
    """A tool, loaded and attached: use it as a context manager (or close() it).

    events() hands out the events as dicts, counts() the rows of a counting
    tool, lost the events the kernel could not hand over. Opening checks the
    privileges and the kernel, and raises a TcpscopeError subclass with one
    line saying what is wrong."""

    def __init__(self, tool: Tool) -> None:
        self.tool = tool
        self.notes: list[str] = tool.notes()  # what this kernel cannot show, said at start
        self.warnings: list[str] = []  # what the user should know at the end (filled by close())
        self._source: Source | None = tool.start()
        self._lost = 0
        self._dicts = tool.dict_renderer()
        self._dict_rows = tool.rows_of(self._dicts)
        self._pending: deque[tuple[Any, ...]] = deque()  # rows taken from the kernel, not yet handed out

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Detach and free everything (idempotent)."""
        if self._source is not None:
            source, self._source = self._source, None
            self._lost = source.lost()
            self.warnings = source.close()

    @property
    def lost(self) -> int:
        """Events the kernel could not hand over so far (no room in the ring buffer)."""
        return self._source.lost() if self._source is not None else self._lost

    @property
    def source(self) -> Source:
        """What the tool started in the kernel (UsageError once closed)."""
        return self._open_source()

    def _open_source(self) -> Source:
        if self._source is None:
            raise UsageError(f"this {self.tool.name} tracer is closed")
        return self._source

    def batches(self, duration: float | None = None, timeout: float | None = None,
                stop: Callable[[], bool] = _never) -> Iterator[list[Any]]:
        """Batches of records, oldest first (tool.rows_of() makes rows of them), until
        duration seconds have passed, no event came for timeout seconds, stop() is
        true, the tool's -M count is reached or a finite source is done."""
        source = self._open_source()
        limit = self.tool.config.max_events
        verbose = self.tool.config.output.verbose
        now = time.monotonic()
        deadline = now + duration if duration else float("inf")
        idle_deadline = now + timeout if timeout else float("inf")
        while True:
            remaining = min(deadline, idle_deadline) - time.monotonic()
            last = stop() or remaining <= 0 or source.finished
            if not last:
                source.wait(min(POLL_SECONDS, remaining))
            drained = 0
            while drained < source.per_wakeup:
                batch = source.drain()
                if not batch:
                    break
                if limit is not None and drained + len(batch) >= limit:
                    batch, last = batch[:limit - drained], True
                drained += len(batch)
                yield batch
                if last:
                    break
            if limit is not None:
                limit -= drained
            if drained and timeout:
                idle_deadline = time.monotonic() + timeout
            if verbose:
                source.progress()
            if last:
                return

    def events(self, duration: float | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The events as dicts (the keys and values that the tool's -j prints),
        oldest first: for duration seconds, until no event came for timeout
        seconds, or (neither given) until the caller stops. Call it again to go on."""
        if self.tool.counting:
            raise UsageError(f"this {self.tool.name} tracer counts: read counts() instead of events()")
        line, pending = self._dicts.line, self._pending
        while pending:  # what a caller that stopped early left
            yield line(pending.popleft())
        for batch in self.batches(duration, timeout):
            pending.extend(self._dict_rows(batch))
            while pending:
                yield line(pending.popleft())

    def counts(self) -> list[dict[str, Any]]:
        """A counting tracer's counts so far (the rows that -c -j prints), most first."""
        if not self.tool.counting:
            raise UsageError(f"this {self.tool.name} tracer does not count: open it with count=True")
        render = self.tool.dict_renderer(counts=True)
        row = self.tool.count_row_maker(render)
        return [render.line(row(values)) for values in self.tool.count_rows(self._open_source())]

    def count_rows(self) -> list[tuple[Any, ...]]:
        return self.tool.count_rows(self._open_source())


def make_tool(name: str, options: dict[str, Any]) -> Tool:
    """A tool by name, with library keywords (checked as the command line checks them)."""
    from .tools import TOOLS

    tool_cls = TOOLS.get(name)
    if tool_cls is None:
        raise UsageError(f"no tool {name!r} (the tools: {', '.join(TOOLS)})")
    return tool_cls(make_config(library_values(name, tool_cls.accepted(), options)))


def open(tool: str, **options: Any) -> Tracer:  # noqa: A001 (tcpscope.open, as the API reads)
    """Start a tool and return its Tracer, e.g.

        with tcpscope.open("life", netns="/var/run/netns/web", local_ports=[80, 443]) as tracer:
            for event in tracer.events(duration=10):
                print(event["pid"], event["tx_bytes"])

    options are the command line's, by name: pid, local_ports, remote_ports,
    family (4 or 6), netns (an inode number or a namespace file), owners=False
    (--no-owner), count=True (-c), and the tool's own (min_ms, sequence,
    stack, ring_mb). Events that happen once open() returns are seen."""
    return Tracer(make_tool(tool, options))


def trace(*probes: str, duration: float | None = None, timeout: float | None = None,
          **options: Any) -> Iterator[dict[str, Any]]:
    """Trace tracepoints, as 'tcpscope trace PROBE...' does: the events as
    dicts (time, cpu, pid, tid, comm, probe, fields, message, and with
    kernel_stack/user_stack the stacks). options: pid, tid, max_events,
    kernel_stack, user_stack, ring_mb. The probes are checked and the
    programs loaded before the first event is asked for."""
    tracer = Tracer(make_tool("trace", {"probes": probes, **options}))
    return _closing(tracer, tracer.events(duration, timeout))


def _closing(tracer: Tracer, events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    with tracer:
        yield from events
