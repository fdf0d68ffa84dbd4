"""The one output pipeline: a tool declares its fields and columns, and the
renderers here share them.

A tool's events have Fields (the JSON keys, in order). Some fields arrive
together as one struct of the kernel record, a Group (the socket, its owner).
A tool builds each row from a record with the renderer's converters
(Renderer.convert): a group's raw bytes become the renderer's form of it
once per distinct value (a socket's events repeat them), and values that may
be null or need escaping are converted. A Column picks one field and says how
the table shows it; CSV shows the exact value (bytes, not KB); JSON shows
every field. This runs for every event, up to a few hundred thousand a
second, so formats are built once and the JSON line is one %-template.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import select
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import OutputFailed

__all__ = ["Writer", "printable", "Field", "Group", "Cell", "Column", "Cache", "Renderer", "TableRenderer",
           "CsvRenderer", "JsonRenderer", "DictRenderer", "flatten", "time_columns"]


@dataclass(frozen=True)
class Field:
    """One JSON key of a tool's events."""

    name: str
    # "number", "hex" (a number shown in hex), "word" (text that needs no JSON escaping), "text",
    # "json" (a list or an object)
    kind: str
    doc: str
    nullable: bool = False  # None (null) when unknown
    decimals: int | None = None  # a float, written with this many decimals


@dataclass(frozen=True)
class Group:
    """Fields that a row carries as one raw struct of the kernel record; the
    tool's decoder for this name turns the bytes into the fields' values."""

    name: str
    fields: tuple[Field, ...]


Cell = Field | Group
Decoders = Mapping[str, Callable[[bytes], tuple[Any, ...]]]


def flatten(cells: Sequence[Cell]) -> tuple[Field, ...]:
    out: list[Field] = []
    for cell in cells:
        out.extend(cell.fields if isinstance(cell, Group) else (cell,))
    return tuple(out)


class Cache(dict[Any, Any]):
    """key -> make(key), computed once per distinct key (bounded)."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key: Any) -> Any:
        if len(self) >= 1 << 16:
            self.clear()
        value = self[key] = self._make(key)
        return value


@dataclass(frozen=True)
class Column:
    header: str
    key: str  # a Field name
    width: int = 0  # 0: no padding (a last column)
    right: bool = False
    truncate: bool = False  # cut to width, as bcc does for COMM
    text: Callable[..., str] | None = None  # the table's text for a (non-None) value
    csv_header: str = ""  # when CSV's exact value differs from the table's text
    csv_text: Callable[[Any], str] | None = None
    table_only: bool = False  # decoration, such as tcpstates' "->": its header on every row
    more: tuple[str, ...] = ()  # further fields shown in this column: text gets them all

    def cell_format(self) -> str:
        if not self.width:
            return "%s"
        align = "" if self.right else "-"
        cut = f".{self.width}" if self.truncate else ""
        return f"%{align}{self.width}{cut}s"


def _same(value: Any) -> Any:
    return value


class Renderer:
    def header(self) -> str | None:
        return None

    def convert(self, name: str) -> Callable[[Any], Any]:
        """What a row holds for the cell called name, from its raw value."""
        return _same

    def converts(self, name: str) -> bool:
        """Whether convert(name) changes anything."""
        return self.convert(name) is not _same

    def line(self, row: tuple[Any, ...]) -> str:
        raise NotImplementedError


class _Columns(Renderer):
    """Table and CSV: rows hold a group as the tuple of its fields' values."""

    def __init__(self, cells: Sequence[Cell], decoders: Decoders) -> None:
        self.index = {f.name: i for i, f in enumerate(flatten(cells))}
        self._groups = {c.name: Cache(decoders[c.name]).__getitem__ for c in cells if isinstance(c, Group)}
        self._is_group = [isinstance(c, Group) for c in cells]

    def convert(self, name: str) -> Callable[[Any], Any]:
        return self._groups.get(name, _same)

    def flat(self, row: tuple[Any, ...]) -> list[Any]:
        values: list[Any] = []
        for value, group in zip(row, self._is_group):
            if group:
                values.extend(value)
            else:
                values.append(value)
        return values


# Control characters as escapes: a command name may hold any byte (prctl), and
# a table goes to a terminal. (JSON and CSV quote them their own way.)
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def printable(text: str) -> str:
    return text.translate(_ESCAPES)


def _printable_values(decode: Callable[[bytes], tuple[Any, ...]]) -> Callable[[bytes], tuple[Any, ...]]:
    def values(raw: bytes) -> tuple[Any, ...]:
        return tuple(printable(v) if isinstance(v, str) else v for v in decode(raw))

    return values


class TableRenderer(_Columns):
    def __init__(self, columns: Sequence[Column], cells: Sequence[Cell], decoders: Decoders) -> None:
        super().__init__(cells, {name: _printable_values(decode) for name, decode in decoders.items()})
        self._columns = list(columns)
        self._format = " ".join(c.cell_format() for c in self._columns) + "\n"
        # (field index or None for decoration, fixed text, converter, more field indexes)
        self._cells = [
            (None, c.header, None, ()) if c.table_only
            else (self.index[c.key], None, c.text, tuple(self.index[k] for k in c.more))
            for c in self._columns
        ]

    def header(self) -> str | None:
        if not any(c.header for c in self._columns):
            return None  # a listing (tplist)
        return (self._format % tuple(c.header for c in self._columns)).rstrip() + "\n"

    def line(self, row: tuple[Any, ...]) -> str:
        flat = self.flat(row)
        values = []
        for i, fixed, text, more in self._cells:
            if i is None:
                values.append(fixed)
                continue
            value = flat[i]
            if more and text:
                values.append(text(value, *(flat[j] for j in more)))
                continue
            values.append("-" if value is None else text(value) if text else value)
        return self._format % tuple(values)


def _decimal_text(field: Field) -> Callable[[Any], str] | None:
    if field.decimals is None:
        return None
    return f"%.{field.decimals}f".__mod__


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


class CsvRenderer(_Columns):
    def __init__(self, columns: Sequence[Column], cells: Sequence[Cell], decoders: Decoders) -> None:
        super().__init__(cells, decoders)
        fields = flatten(cells)
        self._columns = [c for c in columns if not c.table_only]
        self._cells = []
        for c in self._columns:
            i = self.index[c.key]
            self._cells.append((i, c.csv_text or _decimal_text(fields[i])))

    def header(self) -> str:
        return ",".join(c.csv_header or c.header for c in self._columns) + "\n"

    def line(self, row: tuple[Any, ...]) -> str:
        flat = self.flat(row)
        cells = []
        for i, convert in self._cells:
            value = flat[i]
            if value is not None and convert is not None:
                value = convert(value)
            cells.append(_csv_value(value))
        return ",".join(cells) + "\n"


def _json_format(field: Field) -> str:
    """How a field's non-null value goes into a JSON object."""
    if field.kind == "word":
        return '"%s"'
    if field.kind == "hex":
        return '"%x"'
    if field.decimals is not None:
        return f"%.{field.decimals}f"  # faster than a float's repr
    return "%s"


def _null_or(spec: str) -> Callable[[Any], str]:
    return lambda value: "null" if value is None else spec % value


def _json_members(fields: Sequence[Field], quote: Cache) -> tuple[str, dict[int, Callable[[Any], Any]]]:
    """A %-template of JSON members for fields, and the converters that the
    values at some positions need first (null, escaping)."""
    parts: list[str] = []
    converters: dict[int, Callable[[Any], Any]] = {}
    for i, f in enumerate(fields):
        if f.kind == "json":
            parts.append(f'"{f.name}": %s')
            converters[i] = json.dumps
        elif f.kind == "text":  # command names repeat: quote each once
            parts.append(f'"{f.name}": %s')
            converters[i] = quote.__getitem__
        elif f.nullable:
            parts.append(f'"{f.name}": %s')
            converters[i] = _null_or(_json_format(f))
        else:
            parts.append(f'"{f.name}": {_json_format(f)}')
    return ", ".join(parts), converters


class JsonRenderer(Renderer):
    """One JSON object per line: a %-template built once, filled with a row
    whose groups are JSON fragments (made once per distinct value) and whose
    nullable and free-text values are already JSON."""

    def __init__(self, cells: Sequence[Cell], decoders: Decoders) -> None:
        quote = Cache(lambda text: "null" if text is None else json.dumps(text, ensure_ascii=False))
        parts = []
        self._converters: dict[str, Callable[[Any], Any]] = {}
        for cell in cells:
            if isinstance(cell, Group):
                parts.append("%s")
                fragment = self._fragment(cell, decoders[cell.name], quote)
                self._converters[cell.name] = Cache(fragment).__getitem__
            else:
                member, converters = _json_members([cell], quote)
                parts.append(member)
                if converters:
                    self._converters[cell.name] = converters[0]
        self._template = "{" + ", ".join(parts) + "}\n"
        # line(row) is the template's own %: no Python frame per event.
        self.line = self._template.__mod__  # type: ignore[method-assign,assignment]

    @staticmethod
    def _fragment(group: Group, decode: Callable[[bytes], tuple[Any, ...]], quote: Cache
                  ) -> Callable[[bytes], str]:
        template, converters = _json_members(group.fields, quote)

        def fragment(raw: bytes) -> str:
            values = list(decode(raw))
            for i, convert in converters.items():
                values[i] = convert(values[i])
            return template % tuple(values)

        return fragment

    def convert(self, name: str) -> Callable[[Any], Any]:
        return self._converters.get(name, _same)


class DictRenderer(_Columns):
    """The library's events: a dict per row, with the values that JSON shows
    (a float rounded to the decimals JSON prints it with, a hex number as its text)."""

    def __init__(self, cells: Sequence[Cell], decoders: Decoders) -> None:
        super().__init__(cells, decoders)
        fields = flatten(cells)
        self._names = [f.name for f in fields]
        self._shown: list[tuple[int, Callable[[Any], Any]]] = [
            (i, functools.partial(round, ndigits=f.decimals) if f.decimals is not None else "%x".__mod__)
            for i, f in enumerate(fields) if f.decimals is not None or f.kind == "hex"]

    def line(self, row: tuple[Any, ...]) -> dict[str, Any]:  # type: ignore[override]
        values = self.flat(row)
        for i, show in self._shown:
            if values[i] is not None:
                values[i] = show(values[i])
        return dict(zip(self._names, values))


def time_columns(wall: bool, relative: bool, start: float) -> list[Column]:
    """The -T and -t columns, shown before a tool's own."""

    def hms(t: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(t))

    def since(t: float) -> str:
        return f"{t - start:.6f}"

    columns = []
    if wall:
        columns.append(Column("TIME", "time", 8, text=hms, csv_text=hms))
    if relative:
        columns.append(Column("TIME(s)", "time", 9, text=since, csv_text=since))
    return columns


class Writer:
    """Text to a file descriptor, each write whole. Not Python's buffered text
    files: CPython 3.11's drops the rest of a large write to a pipe that a
    signal interrupts when the handler returns (Ctrl-C, while the reader lags).
    A reader that went away raises BrokenPipeError (then every write is
    dropped); any other failure, OutputFailed."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd  # None: the process was started with no output at all
        self.gone = False

    def write(self, text: str) -> int:
        if self.gone:
            return len(text)
        view = memoryview(text.encode("utf-8", "replace"))
        try:
            if self.fd is None:
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            while view:
                view = view[os.write(self.fd, view):]
        except BrokenPipeError:
            self.gone = True
            raise
        except OSError as exc:
            raise OutputFailed(f"cannot write the output: {exc.strerror}") from None
        return len(text)

    def reader_gone(self) -> bool:
        """Whether the output is a pipe whose reader closed it (noticed
        without writing, for tools that have nothing to print yet)."""
        if self.fd is None or self.gone:
            return self.gone
        poller = select.poll()
        poller.register(self.fd, 0)  # POLLERR and POLLHUP are always reported
        self.gone = any(event & (select.POLLERR | select.POLLHUP) for _fd, event in poller.poll(0))
        return self.gone
