"""The command line: 'tcpscope TOOL [options]'. The only place that exits."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_USAGE, TcpscopeError

# The tools are imported in main(), where a Ctrl-C that comes while they load
# (the first 50 ms) ends the program quietly instead of with a traceback.

__all__ = ["main"]

EPILOG = """\
exit status: 0 done, 2 bad usage, 3 not root, 4 something missing on this
host (libbpf, tracefs, BTF, a tracepoint, a kernel feature the tool needs), 5
the kernel refused a BPF program or map, 6 the output cannot be written, 1 a
bug in tcpscope."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line gets one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        from .output import printable  # what the user typed may hold a newline

        sys.stderr.write(f"{self.prog}: {printable(message)} (see '{self.prog} --help')\n")
        sys.exit(EXIT_USAGE)


def _epilog(examples: str) -> str:
    return f"examples:\n{examples}\n\n{EPILOG}"


def build_parser() -> argparse.ArgumentParser:
    from .options import add_options
    from .tools import TOOLS, tplist, trace

    parser = _Parser(
        prog="tcpscope",
        description="TCP observability from the kernel's stable tracepoints.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tcpscope {__version__}")
    tools = parser.add_subparsers(dest="tool", metavar="TOOL", parser_class=_Parser)
    tools.required = True
    for tool in TOOLS.values():
        sub = tools.add_parser(
            tool.name,
            help=tool.summary,
            description=tool.description,
            epilog=_epilog(tool.examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_options(sub, tool.options)
        if hasattr(tool, "add_arguments"):
            tool.add_arguments(sub)
    sub = tools.add_parser("tplist", help=tplist.SUMMARY, description=tplist.DESCRIPTION,
                           epilog=_epilog(tplist.EXAMPLES),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(sub, ["verbose", "json"], {"verbose": "show fields (-vv: offsets, sizes, symbolic values)",
                                           "json": "JSON lines, one object per tracepoint, with its fields"})
    tplist.add_arguments(sub)
    sub = tools.add_parser("trace", help=trace.SUMMARY, description=trace.DESCRIPTION,
                           epilog=_epilog(trace.EXAMPLES),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(sub, ["pid", "tid", "time", "timestamp", "cpu", "json", "kernel_stack", "user_stack",
                      "max_events", "duration", "ring_mb", "verbose"],
                {"pid": "only events of this process ID (the task on-CPU when the tracepoint fires)",
                 "json": "JSON lines: time, pid, tid, comm, probe, every field, and the formatted message",
                 "verbose": "show libbpf's log"})
    trace.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 0  # Ctrl-C before tracing began: nothing to report


def _main(argv: list[str] | None) -> int:
    from .tool import run, stdout_writer
    from .tools import TOOLS, tplist, trace

    args = parse_command_line(argv)
    logging.basicConfig(
        format="tcpscope: %(message)s",
        level=logging.DEBUG if args.verbose else logging.ERROR,
        stream=sys.stderr,
    )
    if args.verbose < 2:
        logging.getLogger("tcpscope.libbpf").setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    try:
        out = stdout_writer()
        if args.tool == "tplist":
            return tplist.run(args, out, sys.stderr)
        if args.tool == "trace":
            return trace.run(args, out, sys.stderr)
        return run(TOOLS[args.tool], args, out)
    except BrokenPipeError:
        return 0  # the reader went away (e.g. '| head')
    except TcpscopeError as exc:
        print(f"tcpscope {args.tool}: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: one line, the traceback only with -v
        logging.getLogger("tcpscope").debug("internal error", exc_info=True)
        print(f"tcpscope {args.tool}: internal error: {exc!r} (run with -v for details, "
              "and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The arguments, or one line on stderr and SystemExit(2)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the tool's own parser, which knows its options
        _tool_parser(parser, args.tool).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _tool_parser(parser: argparse.ArgumentParser, tool: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[tool]  # type: ignore[no-any-return]
    return parser
