"""tcpscope tplist: the kernel's tracepoints and their fields, from tracefs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ebpf.tracefs import EventFormat, list_events, read_format
from ..errors import MissingFeature, NotPermitted
from ..options import Option
from ..output import Column, Field, Renderer
from ..tool import Source, Tool

__all__ = ["Tplist", "render", "tracepoint_values"]

EXAMPLES = """\
  tcpscope tplist 'tcp:*'                    # the TCP tracepoints
  tcpscope tplist -v sock:inet_sock_set_state   # with its fields
  tcpscope tplist -j 'skb:*'                 # as JSON lines, with fields and symbolic values"""
SUMMARY = "list tracepoints and their fields (tplist)"
DESCRIPTION = """\
List the kernel's tracepoints (tplist), from tracefs (found at /sys/kernel/tracing
or /sys/kernel/debug/tracing, or mounted). FILTER is a glob on CATEGORY:EVENT,
such as 'tcp:*' or 'sock:inet*'. -v adds each one's fields (not the common_
ones) as the format file declares them; -vv adds their offset, size and
signedness, and the symbolic values the kernel prints for them (TCP states,
drop reasons). Layouts are those of the running kernel."""


class Tplist(Tool):
    """A listing: its rows come from tracefs, not from the kernel's programs."""

    name = "tplist"
    summary = SUMMARY
    description = DESCRIPTION
    examples = EXAMPLES
    options = ("verbose", "json")
    arguments = (Option((), "patterns", "globs such as 'tcp:*' (default: all)", metavar="FILTER", nargs="*"),)
    option_help = {"verbose": "show fields (-vv: offsets, sizes, symbolic values)",
                   "json": "JSON lines, one object per tracepoint, with its fields"}
    tracing = None
    cells = (
        Field("name", "word", "CATEGORY:EVENT"),
        Field("id", "number", "the tracepoint's ID (with -v or -j)", True),
        Field("fields", "json", "its fields (not the common_ ones): name, declaration, offset, size, "
              "signed, data_loc (with -v or -j)", True),
        Field("symbols", "json", "the symbolic values the kernel prints, by field (with -v or -j)", True),
    )
    fields = cells

    def start(self) -> Source:
        patterns = self.config.patterns
        detailed = self.config.output.verbose or self.config.output.format == "json"
        try:
            names = list_events(patterns)
            events = [read_format(name) for name in names] if detailed else []
        except NotPermitted:
            raise
        except PermissionError as exc:
            raise NotPermitted(f"cannot read tracefs ({exc.strerror}): run it as root") from None
        if not names and patterns:
            raise MissingFeature(f"no tracepoint matches {' '.join(patterns)} "
                                 "('tcpscope tplist' lists them all)")
        if detailed:
            return Listing([tracepoint_values(e) for e in events])
        return Listing([(name, None, None, None) for name in names])

    def columns(self) -> list[Column]:
        verbose = self.config.output.verbose
        return [Column("", "name", text=lambda name, fields, symbols: render(name, fields, symbols, verbose),
                       more=("fields", "symbols"))]

    def row_maker(self, render: Renderer) -> Callable[[Any], tuple[Any, ...]]:
        fields_of, symbols_of = render.convert("fields"), render.convert("symbols")
        return lambda values: (values[0], values[1], fields_of(values[2]), symbols_of(values[3]))


class Listing(Source):
    """Rows known in advance, handed over at once."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def wait(self, timeout: float) -> None:
        pass

    def drain(self) -> list[Any]:
        rows, self._rows = self._rows, []
        self.finished = True
        return rows


def tracepoint_values(event: EventFormat) -> tuple[Any, ...]:
    fields = [
        {"name": f.name, "declaration": f.declaration, "offset": f.offset, "size": f.size,
         "signed": f.signed, "data_loc": f.data_loc}
        for f in event.fields if not f.common
    ]
    symbols = {name: {str(v): s for v, s in table.items()} for name, table in event.symbols.items() if table}
    return event.name, event.id, fields, symbols


def render(name: str, fields: list[dict[str, Any]] | None, symbols: dict[str, dict[str, str]] | None,
           verbose: int) -> str:
    """A tracepoint as the table shows it: its name, then (-v) its fields, (-vv) with
    their offsets, sizes and signedness, and the symbolic values the kernel prints."""
    lines = [name]
    if verbose:
        for f in fields or ():
            line = f"    {f['declaration']};"
            if verbose > 1:
                sign = "signed" if f["signed"] else "unsigned"
                line += f"  /* offset {f['offset']}, size {f['size']}, {sign} */"
            lines.append(line)
    if verbose > 1:
        for field, table in (symbols or {}).items():
            values = " ".join(f"{value}={symbol}" for value, symbol in table.items())
            lines.append(f"    {field}: {values}")
    return "\n".join(lines)
