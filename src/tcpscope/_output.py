"""The one output pipeline: a tool declares its fields and columns, and the
renderers here share them.

A tool turns each kernel record into a row: a tuple of values in the order of
its declared Fields (the JSON keys). A Column picks one field and says how the
table shows it; CSV shows the exact value (bytes, not KB); JSON shows every
field. Rows are tuples and the formats are built once, because this runs for
every event, up to a few hundred thousand a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Field", "Column", "Renderer", "TableRenderer", "CsvRenderer", "JsonRenderer", "time_columns"]


@dataclass(frozen=True)
class Field:
    """One JSON key of a tool's events."""

    name: str
    kind: str  # "number", "word" (text that needs no JSON escaping) or "text"
    doc: str
    nullable: bool = False  # None (null) when unknown
    decimals: int | None = None  # a float, written with this many decimals


@dataclass(frozen=True)
class Column:
    header: str
    key: str  # a Field name
    width: int = 0  # 0: no padding (a last column)
    right: bool = False
    truncate: bool = False  # cut to width, as bcc does for COMM
    text: Callable[[Any], str] | None = None  # the table's text for a (non-None) value
    csv_header: str = ""  # when CSV's exact value differs from the table's text
    csv_text: Callable[[Any], str] | None = None
    table_only: bool = False  # decoration, such as tcpstates' "->": its header on every row

    def cell_format(self) -> str:
        if not self.width:
            return "%s"
        align = "" if self.right else "-"
        cut = f".{self.width}" if self.truncate else ""
        return f"%{align}{self.width}{cut}s"


class Renderer:
    def header(self) -> str | None:
        return None

    def line(self, row: tuple[Any, ...]) -> str:
        raise NotImplementedError


def _index(fields: Sequence[Field]) -> dict[str, int]:
    return {f.name: i for i, f in enumerate(fields)}


class TableRenderer(Renderer):
    def __init__(self, columns: Sequence[Column], fields: Sequence[Field]) -> None:
        index = _index(fields)
        self._columns = list(columns)
        self._format = " ".join(c.cell_format() for c in self._columns) + "\n"
        # (row index or None for decoration, fixed text, converter)
        self._cells = [
            (None, c.header, None) if c.table_only else (index[c.key], None, c.text) for c in self._columns
        ]

    def header(self) -> str:
        return (self._format % tuple(c.header for c in self._columns)).rstrip() + "\n"

    def line(self, row: tuple[Any, ...]) -> str:
        values = []
        for i, fixed, text in self._cells:
            if i is None:
                values.append(fixed)
                continue
            value = row[i]
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


class CsvRenderer(Renderer):
    def __init__(self, columns: Sequence[Column], fields: Sequence[Field]) -> None:
        index = _index(fields)
        self._columns = [c for c in columns if not c.table_only]
        self._cells = [
            (index[c.key], c.csv_text or _decimal_text(fields[index[c.key]])) for c in self._columns
        ]

    def header(self) -> str:
        return ",".join(c.csv_header or c.header for c in self._columns) + "\n"

    def line(self, row: tuple[Any, ...]) -> str:
        cells = []
        for i, convert in self._cells:
            value = row[i]
            if value is not None and convert is not None:
                value = convert(value)
            cells.append(_csv_value(value))
        return ",".join(cells) + "\n"


class _Quoted(dict[Any, str]):
    """A text value -> its JSON literal, cached (command names repeat)."""

    def __init__(self) -> None:
        super().__init__({None: "null"})

    def __missing__(self, key: str) -> str:
        if len(self) >= 1 << 16:
            self.clear()
            self[None] = "null"
        value = self[key] = json.dumps(key, ensure_ascii=False)
        return value


def _number_or_null(value: Any) -> Any:
    return "null" if value is None else value


def _decimal_or_null(spec: str) -> Callable[[Any], str]:
    return lambda value: "null" if value is None else spec % value


def _word_or_null(value: Any) -> str:
    return "null" if value is None else f'"{value}"'


class JsonRenderer(Renderer):
    """One JSON object per line. The object's text is a %-template built once:
    numbers and words go in as they are, only nullable and free-text fields
    are converted."""

    def __init__(self, fields: Sequence[Field]) -> None:
        parts = []
        self._convert: list[tuple[int, Callable[[Any], Any]]] = []
        for i, f in enumerate(fields):
            decimal = f"%.{f.decimals}f" if f.decimals is not None else None
            if f.kind == "word" and not f.nullable:
                parts.append(f'"{f.name}": "%s"')
                continue
            if decimal and not f.nullable:
                parts.append(f'"{f.name}": {decimal}')  # faster than a float's repr
                continue
            parts.append(f'"{f.name}": %s')
            if decimal:
                self._convert.append((i, _decimal_or_null(decimal)))
            elif f.kind == "text":
                self._convert.append((i, _Quoted().__getitem__))
            elif f.kind == "word":
                self._convert.append((i, _word_or_null))
            elif f.nullable:
                self._convert.append((i, _number_or_null))
        self._template = "{" + ", ".join(parts) + "}\n"

    def line(self, row: tuple[Any, ...]) -> str:
        if self._convert:
            values = list(row)
            for i, convert in self._convert:
                values[i] = convert(values[i])
            row = tuple(values)
        return self._template % row


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
