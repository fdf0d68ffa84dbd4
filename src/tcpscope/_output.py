"""The one output pipeline: a tool declares columns, renderers share them.

Every event reaches a renderer as a dict whose keys are the tool's JSON keys;
a Column picks one key and says how the table shows it. CSV shows the exact
value (bytes, not KB); JSON shows the whole dict.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Column", "Renderer", "TableRenderer", "CsvRenderer", "JsonRenderer", "time_columns"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    width: int = 0  # 0: no padding (a last column)
    right: bool = False
    truncate: bool = False  # cut to width, as bcc does for COMM
    text: Callable[[Any], str] = str  # the table's text for a (non-None) value
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

    def line(self, fields: dict[str, Any]) -> str:
        raise NotImplementedError


class TableRenderer(Renderer):
    def __init__(self, columns: Sequence[Column]) -> None:
        self._columns = list(columns)
        self._format = " ".join(c.cell_format() for c in self._columns) + "\n"
        self._cells = [(c.key, c.header if c.table_only else None, c.text) for c in self._columns]

    def header(self) -> str:
        return (self._format % tuple(c.header for c in self._columns)).rstrip() + "\n"

    def line(self, fields: dict[str, Any]) -> str:
        values = []
        for key, fixed, text in self._cells:
            if fixed is not None:
                values.append(fixed)
                continue
            value = fields.get(key)
            values.append("-" if value is None else text(value))
        return self._format % tuple(values)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


class CsvRenderer(Renderer):
    def __init__(self, columns: Sequence[Column]) -> None:
        self._columns = [c for c in columns if not c.table_only]

    def header(self) -> str:
        return ",".join(c.csv_header or c.header for c in self._columns) + "\n"

    def line(self, fields: dict[str, Any]) -> str:
        cells = []
        for c in self._columns:
            value = fields.get(c.key)
            if value is not None and c.csv_text is not None:
                value = c.csv_text(value)
            cells.append(_csv_value(value))
        return ",".join(cells) + "\n"


class JsonRenderer(Renderer):
    def line(self, fields: dict[str, Any]) -> str:
        return _encode(fields) + "\n"


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
