"""tracefs: found where it is mounted (or mounted where it belongs), its
tracepoints listed, and their format files parsed. Layouts always come from
the running kernel's format files, never from a table in our code."""

from __future__ import annotations

import ctypes
import ctypes.util
import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import MissingFeature, NotPermitted

__all__ = ["tracefs_root", "event_dir", "find_event", "list_events", "read_format", "parse_format",
           "EventFormat", "FieldFormat", "CANDIDATES"]

CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
# events/ftrace/ describes ftrace's own ring buffer entries: not tracepoints, perf and BPF cannot use them
FTRACE = "ftrace"
_root: str | None = None


def _mount_tracefs(target: str) -> bool:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return bool(libc.mount(b"tracefs", target.encode(), b"tracefs", 0, None) == 0)


def tracefs_root() -> str:
    """The tracefs mount point, mounting it at /sys/kernel/tracing if needed."""
    global _root
    if _root is None:
        for path in CANDIDATES:
            # The effective IDs and capabilities: CAP_DAC_READ_SEARCH is enough.
            if os.path.isdir(path) and not os.access(path, os.R_OK | os.X_OK, effective_ids=True):
                raise NotPermitted(f"reading tracefs ({path}) needs root (or CAP_DAC_READ_SEARCH): run it "
                                   "with sudo")
            if os.path.isdir(os.path.join(path, "events")):
                _root = path
                break
        else:
            target = CANDIDATES[0]
            if not (os.path.isdir(target) and _mount_tracefs(target)):
                raise MissingFeature(
                    f"tracefs is not mounted and cannot be mounted at {target} "
                    f"({os.strerror(ctypes.get_errno()) if os.path.isdir(target) else 'no such directory'}); "
                    f"mount it with 'mount -t tracefs tracefs {target}'"
                )
            _root = target
    return _root


def event_dir(category: str, event: str) -> str:
    return os.path.join(tracefs_root(), "events", category, event)


def find_event(event: str) -> str | None:
    """CATEGORY:EVENT for a tracepoint name, or None when the kernel has none."""
    events = os.path.join(tracefs_root(), "events")
    for category in sorted(os.listdir(events)):
        if os.path.isdir(os.path.join(events, category, event)):
            return f"{category}:{event}"
    return None


def list_events(patterns: Sequence[str] | None = None) -> list[str]:
    """CATEGORY:EVENT names of the kernel's tracepoints matching any glob."""
    events = os.path.join(tracefs_root(), "events")
    names = []
    for category in sorted(os.listdir(events)):
        directory = os.path.join(events, category)
        if not os.path.isdir(directory) or category == FTRACE:
            continue
        for event in sorted(os.listdir(directory)):
            name = f"{category}:{event}"
            if os.path.isfile(os.path.join(directory, event, "format")) and (
                not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)
            ):
                names.append(name)
    return names


@dataclass(frozen=True)
class FieldFormat:
    """One field of a tracepoint's record, as its format file declares it."""

    declaration: str  # as written, e.g. "const void * skaddr" or "__u8 saddr[4]"
    name: str
    offset: int
    size: int
    signed: bool

    @property
    def common(self) -> bool:
        return self.name.startswith("common_")

    @property
    def data_loc(self) -> bool:
        """A variable-length field: the record holds its offset and length."""
        return self.declaration.startswith("__data_loc")


@dataclass(frozen=True)
class EventFormat:
    name: str  # CATEGORY:EVENT
    id: int
    fields: tuple[FieldFormat, ...]
    print_fmt: str
    # field name -> {value: symbol}, from __print_symbolic() and __print_flags();
    # a value is a name where the kernel did not export its enum to tracefs
    symbols: dict[str, dict[int | str, str]] = field(default_factory=dict)


_FIELD = re.compile(r"field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
                    r"\s*signed:(?P<signed>\d+);")
_TABLE = re.compile(r"__print_(?:symbolic|flags)\(\s*REC->(\w+)\s*,(?:\s*\"[^\"]*\"\s*,)?")
# { 1, "TCP_ESTABLISHED" } or, where the kernel did not export the enum, { TCP_ESTABLISHED, "..." }
_ENTRY = re.compile(r"\s*,?\s*\{\s*(?:(-?(?:0x[0-9a-fA-F]+|\d+))[uUlL]*|(\w+))\s*,\s*\"([^\"]*)\"\s*\}")


def _field_name(declaration: str) -> str:
    return re.sub(r"\[.*\]$", "", declaration).split()[-1].lstrip("*")


def parse_format(category: str, text: str) -> EventFormat:
    """A format file's text (events/CATEGORY/EVENT/format) as an EventFormat."""
    name = re.search(r"^name: (\S+)", text, re.M)
    ident = re.search(r"^ID: (\d+)", text, re.M)
    if not name or not ident:
        raise ValueError("not a tracepoint format file")
    fields = tuple(
        FieldFormat(m["decl"].strip(), _field_name(m["decl"].strip()), int(m["offset"]), int(m["size"]),
                    m["signed"] == "1")
        for m in _FIELD.finditer(text)
    )
    print_fmt = text.split("print fmt: ", 1)[1].strip() if "print fmt: " in text else ""
    symbols: dict[str, dict[int | str, str]] = {}
    for table in _TABLE.finditer(print_fmt):
        entries = symbols.setdefault(table[1], {})
        pos = table.end()
        while entry := _ENTRY.match(print_fmt, pos):
            entries[int(entry[1], 0) if entry[1] else entry[2]] = entry[3]
            pos = entry.end()
    return EventFormat(f"{category}:{name[1]}", int(ident[1]), fields, print_fmt, symbols)


def read_format(event: str) -> EventFormat:
    """The running kernel's format of CATEGORY:EVENT."""
    category, _, name = event.partition(":")
    if category == FTRACE:
        raise MissingFeature(f"{event} is one of ftrace's own record formats, not a tracepoint")
    try:
        with open(os.path.join(event_dir(category, name), "format")) as f:
            return parse_format(category, f.read())
    except FileNotFoundError:
        raise MissingFeature(f"this kernel has no tracepoint {event!r}") from None
