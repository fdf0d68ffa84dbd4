"""What every tool is: its options, its rows' fields and columns, and the
kernel side it starts (a Source of records). The tools in tcpscope.tools are
Tools; the one loop that runs them is tcpscope.tracer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, ClassVar

from .config import Config
from .ebpf.kernel import Requirement, release, require, tracepoint_field
from .ebpf.object import BpfObject, ObjectSpec
from .errors import NotPermitted, TcpscopeError, UsageError
from .net import AF_INET, AF_INET6, port_bitmap
from .options import OPTIONS, Option
from .output import (
    Cell,
    Column,
    CsvRenderer,
    DictRenderer,
    Field,
    JsonRenderer,
    Renderer,
    TableRenderer,
    time_columns,
)

__all__ = ["Tool", "ObjectTool", "Source", "object_spec", "require_privileges", "RING_BYTES", "WAKEUP_BYTES"]

log = logging.getLogger("tcpscope")

RING_BYTES = 16 << 20  # room for bursts while the reader is busy or descheduled
# The tracepoint fields the kernel programs use where the kernel has them (common.bpf.h).
TRACEPOINT_FEATURES = {
    "retransmit_has_err": tracepoint_field("tcp:tcp_retransmit_skb", "err", "6.17"),
    "send_reset_has_reason": tracepoint_field("tcp:tcp_send_reset", "reason", "6.10"),
}
PAGE_BYTES = 4096  # a ring buffer's smallest size (a tool with no events keeps its rings this small)
WAKEUP_BYTES = 1 << 20  # the kernel wakes the reader once this much waits
BATCH = 8192  # records decoded at a time
_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


class Source:
    """A started tool's kernel side: records as they arrive, until closed."""

    finished = False  # True once a finite source (a listing) has handed over everything
    per_wakeup = 1 << 30  # records taken per wakeup at most, so that the loop comes back to check

    def wait(self, timeout: float) -> None:
        """Return when records may be waiting, or after timeout seconds."""
        time.sleep(timeout)

    def drain(self) -> list[Any]:
        """The records waiting, oldest first ([] when none)."""
        raise NotImplementedError

    def lost(self) -> int:
        """Events the kernel could not hand over (no room in the ring buffer)."""
        return 0

    def progress(self) -> None:
        """Log losses as they happen (-v)."""

    def close(self) -> list[str]:
        """Free everything; what the user should know at the end (warnings)."""
        return []


def monotonic_to_unix_ns() -> int:
    """What turns bpf_ktime_get_ns() (CLOCK_MONOTONIC) into UNIX time. The clocks are read
    in turn: of a few tries, the one least delayed between its two monotonic readings (a
    preempted try would put two tracers' times of one event milliseconds apart)."""
    tries = []
    for _ in range(5):
        before, unix, after = time.monotonic_ns(), time.time_ns(), time.monotonic_ns()
        tries.append((after - before, unix - (before + after) // 2))
    return min(tries)[1]


class Tool:
    """One tool: its options, its fields and columns, and how it starts."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line in 'tcpscope --help'
    description: ClassVar[str]  # the tool's --help text
    options: ClassVar[tuple[str, ...]]  # names in the registry (options.py)
    arguments: ClassVar[tuple[Option, ...]] = ()  # its own positional arguments
    option_help: ClassVar[dict[str, str]] = {}  # a registry option's help, where this tool means more
    examples: ClassVar[str]  # the end of its --help: command lines with what each does
    tracing: str | None  # "Tracing <this>. Ctrl-C to end."; None: it prints no such line
    # A time column even without -T or -t: "wall" (TIME, as tcpretrans) or "relative" (TIME(s));
    # either flag replaces it.
    default_time: ClassVar[str] = ""
    cells: tuple[Cell, ...]  # what a row holds: fields, and groups of them
    fields: tuple[Field, ...]  # the JSON keys, in order (cells flattened)
    count_cells: ClassVar[tuple[Field, ...]] = ()  # what -c reports per row (the JSON keys)
    group_keys: ClassVar[tuple[str, ...]] = ()  # what --by may name
    redraws: ClassVar[bool] = False  # interval reports redraw a terminal's screen (top), unless --scroll
    serves: ClassVar[bool] = False  # serves its counts over HTTP until stopped (serve), instead of printing

    def __init__(self, config: Config, clock_offset_ns: int | None = None) -> None:
        if config.by is not None and config.by not in self.group_keys:
            keys = " or ".join(self.group_keys) or "nothing"
            raise UsageError(f"--by {config.by}: {self.name} groups by {keys}")
        self.config = config
        self.clock_offset_ns = monotonic_to_unix_ns() if clock_offset_ns is None else clock_offset_ns
        self.start_time = time.time()

    @classmethod
    def accepted(cls) -> tuple[Option, ...]:
        """Its options and arguments, from the registry."""
        return (*(OPTIONS[name] for name in cls.options), *cls.arguments)

    @property
    def counting(self) -> bool:
        """Counts in the kernel, reported at the end, instead of events."""
        return self.config.count

    @property
    def wide(self) -> bool:
        """Wide columns: asked for (-w), or needed: CSV, and -6 (an IPv6 address does not
        fit the 15 characters of an IPv4 one; with both families, -w makes room)."""
        return self.config.output.wide or self.csv or self.config.filters.family == 6

    @property
    def csv(self) -> bool:
        return self.config.output.format == "csv"

    def start(self) -> Source:
        """Load and attach what the tool needs in the kernel."""
        raise NotImplementedError

    def notes(self) -> list[str]:
        """What the user should know before the first event (what this kernel cannot show)."""
        return []

    def columns(self) -> list[Column]:
        raise NotImplementedError

    def row_maker(self, render: Renderer) -> Callable[[Any], tuple[Any, ...]]:
        """A function from a record to a row for render: a value per cell,
        passed through render.convert(cell name) where a cell is a group,
        nullable or text."""
        raise NotImplementedError

    def rows_of(self, render: Renderer) -> Callable[[list[Any]], list[tuple[Any, ...]]]:
        """row_maker(render) for a batch of records; the first row is checked to
        hold a value per cell (the contract between the record and the cells)."""
        row = self.row_maker(render)
        cells = len(self.cells)
        checked = False

        def rows(batch: list[Any]) -> list[tuple[Any, ...]]:
            nonlocal checked
            made = list(map(row, batch))
            if not checked and made:
                if len(made[0]) != cells:
                    raise TcpscopeError(f"{self.name} makes rows of {len(made[0])} values for {cells} cells")
                checked = True
            return made

        return rows

    def decoders(self) -> dict[str, Callable[[bytes], tuple[Any, ...]]]:
        """For each group in cells, raw bytes -> the values of its fields."""
        return {}

    def count_columns(self) -> list[Column]:
        """The table of -c's report."""
        return []

    def count_row_maker(self, render: Renderer) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
        """A count row's values as render holds them (null, text and JSON values converted)."""
        converters = [(i, render.convert(cell.name)) for i, cell in enumerate(self.count_cells)
                      if render.converts(cell.name)]

        def row(values: tuple[Any, ...]) -> tuple[Any, ...]:
            converted = list(values)
            for i, convert in converters:
                converted[i] = convert(converted[i])
            return tuple(converted)

        return row

    def count_rows(self, source: Source) -> list[tuple[Any, ...]]:
        """-c's rows (a value per count_cells), most first."""
        raise TcpscopeError(f"{self.name} does not count")

    def renderer(self, counts: bool = False) -> Renderer:
        """The command line's renderer for events, or for -c's report."""
        cells: Sequence[Cell] = self.count_cells if counts else self.cells
        decoders = {} if counts else self.decoders()
        fmt = self.config.output.format
        if fmt == "json":
            return JsonRenderer(cells, decoders)
        if counts:
            columns = self.count_columns()
        else:
            output = self.config.output
            chosen = output.time or output.timestamp
            wall = output.time or (self.default_time == "wall" and not chosen)
            relative = output.timestamp or (self.default_time == "relative" and not chosen)
            columns = time_columns(wall, relative, self.start_time) + self.columns()
        if fmt == "csv":
            return CsvRenderer(columns, cells, decoders)
        return TableRenderer(columns, cells, decoders)

    def dict_renderer(self, counts: bool = False) -> DictRenderer:
        """The library's renderer: a dict per row, the values that -j prints."""
        return DictRenderer(self.count_cells if counts else self.cells, {} if counts else self.decoders())


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

    def has(cap: int) -> bool:
        return bool(caps >> cap & 1)

    if not (has(_CAP_SYS_ADMIN) or (has(_CAP_BPF) and has(_CAP_PERFMON))):
        raise NotPermitted("tcpscope needs root (or CAP_BPF and CAP_PERFMON): run it with sudo")


class ObjectTool(Tool):
    """A tool whose kernel side is one of tcpscope's objects (bpf/NAME.bpf.c),
    handing over struct `record` events through the rings "events" and "spill"."""

    object_name: ClassVar[str]
    record: ClassVar[str | None]  # the event struct in the object's BTF; None: no events, only counts
    record_fields: ClassVar[tuple[str, ...]] = ()  # its members, in the order row_maker() unpacks them
    skip_programs: ClassVar[tuple[str, ...]] = ()  # programs of the object this tool does not need
    unused_maps: ClassVar[tuple[str, ...]] = ()  # maps it never uses: made as small as can be
    owner_programs: ClassVar[tuple[str, ...]] = ()  # programs that only follow owners: --no-owner skips them
    requires: ClassVar[tuple[Requirement, ...]] = ()  # refused, in one line, on a kernel without these
    # What the tool cannot see on a kernel without a requirement: said at start.
    degraded: ClassVar[tuple[tuple[Requirement, str], ...]] = ()
    skipped: ClassVar[str] = "events"  # what a program the kernel skipped may have cost, in words
    # What was not stored when a map was full, in words after a count: every object
    # has the listeners' owners (an LRU map, so it fails only without memory).
    full: ClassVar[str] = "listening sockets' owners could not be stored: no memory"

    def __init__(self, config: Config, start_ns: int | None = None, clock_offset_ns: int | None = None,
                 spec: ObjectSpec | None = None) -> None:
        super().__init__(config, clock_offset_ns)
        self.spec = spec or object_spec(self.object_name)
        if start_ns is not None:
            self.start_time = (start_ns + self.clock_offset_ns) / 1e9
        if self.record is None:
            return
        self.layout = self.spec.layout(self.record)
        if self.layout.fields != self.record_fields or self.record_fields[0] != "ts_ns":
            raise TcpscopeError(f"{self.spec.name}.bpf.o has struct {self.record} {self.layout.fields}, "
                                f"but the {self.name} tool reads {self.record_fields}")

    @property
    def ring_bytes(self) -> int:
        if self.record is None:
            return PAGE_BYTES  # no events: the smallest ring there is
        mb = self.config.ring_mb
        return mb << 20 if mb else RING_BYTES

    def constants(self) -> dict[str, Any]:
        """Kernel-side filters, and what the kernel's tracepoints carry."""
        f = self.config.filters
        values: dict[str, Any] = {name: int(field.present()) for name, field in TRACEPOINT_FEATURES.items()}
        if f.pid:
            values["filter_pid"] = f.pid
        if f.family:
            values["filter_family"] = AF_INET if f.family == 4 else AF_INET6
        if f.netns:
            values["filter_netns"] = f.netns
        for ports, name in ((f.local_ports, "lports"), (f.remote_ports, "rports")):
            if ports:
                values[f"filter_{name}_on"] = 1
                values[f"filter_{name}"] = port_bitmap(ports)
        return values

    def notes(self) -> list[str]:
        return [f"tcpscope {self.name}: note: {lost} on this kernel ({release()}): that needs {requirement}"
                for requirement, lost in self.degraded if not requirement.present()]

    def start(self) -> Source:
        require_privileges()
        require(self.requires)
        obj = BpfObject(self.spec)
        try:
            # Owners are needed to show them or to filter by them; counts show none.
            follow = self.config.owners and (not self.counting or bool(self.config.filters.pid))
            obj.set_constants({**self.constants(), "wakeup_bytes": WAKEUP_BYTES,
                               "follow_owners": int(follow)})
            obj.resize("events", self.ring_bytes)
            if self.record is None:
                obj.resize("spill", PAGE_BYTES)
            obj.skip(self.skip_programs + (() if follow else self.owner_programs))
            # A tool with programs only for owners keeps sockets only for them.
            owners_only = ("socks", "listener_owners") if self.owner_programs and not follow else ()
            for name in self.unused_maps + owners_only:
                obj.resize(name, 1)
            obj.load()
            obj.attach()
            return ObjectEvents(self, obj)
        except BaseException:
            obj.close()
            raise

    def exit_notes(self, counters: Any) -> list[str]:
        """What the user should know at exit besides lost events."""
        return []

    # -c: the map "counts", its key and value structs, and the rows made from its items.
    count_map: ClassVar[tuple[str, str]] = ("", "")

    def count_rows(self, source: Source) -> list[tuple[Any, ...]]:
        if not self.count_cells or not isinstance(source, ObjectEvents):
            return super().count_rows(source)
        return self.counted(source.obj.map_items("counts", *self.count_map))

    def counted(self, items: list[tuple[Any, Any]]) -> list[tuple[Any, ...]]:
        """-c's rows from the items of the map "counts", most first."""
        raise NotImplementedError


class ObjectEvents(Source):
    """An ObjectTool's events: the main ring, and the spill ring that holds
    events which must not be lost behind a full one (merged by time)."""

    def __init__(self, tool: ObjectTool, obj: BpfObject) -> None:
        self.tool, self.obj = tool, obj
        self.ring, self.spill = obj.ring_buffer("events"), obj.ring_buffer("spill")
        if tool.record is not None:
            self.per_wakeup = tool.ring_bytes // tool.layout.size  # a ring's worth
        self._lost_seen = self._misses_seen = 0

    def wait(self, timeout: float) -> None:
        self.ring.wait(timeout)

    def drain(self) -> list[Any]:
        if self.tool.record is None:
            return []
        batch = self.ring.drain(self.tool.layout, BATCH)
        # Read after the main ring, the spill ring holds every event that
        # precedes, on the same socket, one already read: merge by time.
        spilled = self.spill.drain(self.tool.layout)
        if spilled:
            batch = sorted(batch + spilled, key=_timestamp)
        return batch

    def counters(self) -> Any:
        return self.obj.read_global(".bss", "counters", "counters")

    def lost(self) -> int:
        return int(self.counters().lost)

    def progress(self) -> None:
        lost = self.lost()
        if lost > self._lost_seen:
            log.warning("%d events lost so far: no room in the ring buffers", lost)
            self._lost_seen = lost
        misses = self.obj.recursion_misses()
        if misses > self._misses_seen:
            log.warning("so far: %s", _skipped(misses, self.tool.skipped).removeprefix("WARNING: "))
            self._misses_seen = misses

    def close(self) -> list[str]:
        try:
            counters = self.counters()
            misses = self.obj.recursion_misses()
        finally:
            self.obj.close()
        notes = self.tool.exit_notes(counters)
        if misses:
            notes.insert(0, _skipped(misses, self.tool.skipped))
        if counters.lost:
            notes.insert(0, f"WARNING: {counters.lost} events were lost: no room in the ring buffers")
        if counters.storage_failed:
            notes.append(f"WARNING: {counters.storage_failed} sockets could not be tracked: "
                         "more sockets than the state map holds, or no memory")
        if counters.map_full:
            notes.append(f"WARNING: {counters.map_full} {self.tool.full}")
        return notes


def _skipped(misses: int, what: str) -> str:
    return (f"WARNING: the kernel skipped tcpscope's programs {misses} times (a tracepoint fired on a CPU "
            f"where the program was already running): up to {misses} {what} may be missing")


def _timestamp(record: tuple[Any, ...]) -> Any:
    return record[0]  # every event struct starts with ts_ns
