"""tcpscope tplist: the kernel's tracepoints and their fields, from tracefs."""

from __future__ import annotations

import argparse
import json
from typing import IO

from ..ebpf.tracefs import EventFormat, list_events, read_format
from ..errors import EnvironmentProblem, PermissionProblem
from ..output import Writer

__all__ = ["SUMMARY", "DESCRIPTION", "add_arguments", "run", "render"]

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filters", nargs="*", metavar="FILTER", help="globs such as 'tcp:*' (default: all)")


def render(event: EventFormat, verbose: int) -> str:
    lines = [event.name]
    if verbose:
        for f in event.fields:
            if f.common:
                continue
            line = f"    {f.declaration};"
            if verbose > 1:
                sign = "signed" if f.signed else "unsigned"
                line += f"  /* offset {f.offset}, size {f.size}, {sign} */"
            lines.append(line)
    if verbose > 1:
        for name, table in event.symbols.items():
            if table:
                values = " ".join(f"{value}={symbol}" for value, symbol in table.items())
                lines.append(f"    {name}: {values}")
    return "\n".join(lines) + "\n"


def as_json(event: EventFormat) -> str:
    fields = [
        {"name": f.name, "declaration": f.declaration, "offset": f.offset, "size": f.size,
         "signed": f.signed, "data_loc": f.data_loc}
        for f in event.fields if not f.common
    ]
    symbols = {name: {str(v): s for v, s in table.items()} for name, table in event.symbols.items() if table}
    return json.dumps({"name": event.name, "id": event.id, "fields": fields, "symbols": symbols}) + "\n"


def run(args: argparse.Namespace, out: Writer, err: IO[str]) -> int:
    try:
        names = list_events(args.filters)
        events = [read_format(name) for name in names] if args.verbose or args.json else []
    except PermissionError as exc:
        raise PermissionProblem(f"cannot read tracefs ({exc.strerror}): run it as root") from None
    if not names and args.filters:
        raise EnvironmentProblem(f"no tracepoint matches {' '.join(args.filters)} "
                                 "('tcpscope tplist' lists them all)")
    if args.json:
        out.write("".join(as_json(e) for e in events))
    elif args.verbose:
        out.write("".join(render(e, args.verbose) for e in events))
    else:
        out.write("".join(f"{name}\n" for name in names))
    return 0
