"""The command line: 'tcpscope TOOL [options]'. The only place that exits."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any, NoReturn

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_USAGE, TcpscopeError, UsageError

if TYPE_CHECKING:
    from .options import Option
    from .output import Writer
    from .tool import Tool
    from .tracer import Tracer

# The tools are imported in main(), where a Ctrl-C that comes while they load
# (the first 50 ms) ends the program quietly instead of with a traceback.

__all__ = ["main", "run", "build_parser", "parse_command_line"]

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
    from .tools import TOOLS

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
        add_options(sub, tool.options, tool.arguments, tool.option_help)
    return parser


CLEAR_SCREEN = "\033[H\033[2J"  # cursor home, erase the screen (what clear(1) prints)
# Options that cannot be combined.
EXCLUSIVE = (("ipv4", "ipv6"), ("csv", "json"), ("pid", "no_owner"))


def add_options(parser: argparse.ArgumentParser, names: Iterable[str], arguments: Iterable[Option] = (),
                helps: Mapping[str, str] | None = None) -> None:
    """Add the registry's named options, then the tool's own arguments; helps replaces an
    option's help where a tool gives it a more precise meaning (-v: what more it shows)."""
    from .options import OPTIONS

    names = list(names)
    grouped: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for pair in EXCLUSIVE:
        if all(n in names for n in pair):
            group = parser.add_mutually_exclusive_group()
            for n in pair:
                grouped[n] = group
    for name in names:
        _add(grouped.get(name, parser), OPTIONS[name], (helps or {}).get(name))
    for argument in arguments:
        _add(parser, argument)


def _add(parser: Any, option: Option, help: str | None = None) -> None:
    """An option of the registry as argparse's: its value through checked(parse)
    (a flag: the constant it sets), stored under its Config field's name."""
    kwargs: dict[str, Any] = {"help": help or option.help}
    if option.parse is not None:
        kwargs.update(type=checked(option.parse), metavar=option.metavar)
    elif option.dest == "verbose":
        kwargs.update(action="count", default=0)
    elif not option.nargs:
        kwargs.update(action="store_const", const=option.const)
    if option.nargs:
        kwargs.update(nargs=option.nargs, metavar=option.metavar)
    if option.flags:
        parser.add_argument(*option.flags, dest=option.dest, **kwargs)
    else:
        parser.add_argument(option.dest, **kwargs)


def checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Turn a UsageError into the message argparse shows for a bad value."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 0  # Ctrl-C before tracing began: nothing to report


def _main(argv: list[str] | None) -> int:
    from .options import make_config
    from .tools import TOOLS

    args = parse_command_line(argv)
    logging.basicConfig(
        format="tcpscope: %(message)s",
        level=logging.DEBUG if args.verbose else logging.ERROR,
        stream=sys.stderr,
    )
    if args.verbose < 2:
        logging.getLogger("tcpscope.libbpf").setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    try:
        return run(TOOLS[args.tool](make_config(vars(args))), stdout_writer(), sys.stderr)
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


def run(tool: Tool, out: Writer, err: IO[str]) -> int:
    """Start the tool and write its events (or, counting, its counts) until
    Ctrl-C, SIGTERM, SIGHUP, -d, -M, the end of a listing or the reader going
    away; then say what was lost."""
    from .tracer import Tracer

    tracer = Tracer(tool)
    with tracer, StopSignals() as stop:
        for note in tracer.notes:
            print(note, file=err)
        if tool.tracing:
            print(f"Tracing {tool.tracing}. Ctrl-C to end.", file=err, flush=True)
        plot = Samples(tool) if tool.config.output.plot else None
        stopped = lambda: stop.requested or out.reader_gone()  # noqa: E731
        try:
            if tool.serves:
                _serve(tracer, err, stopped)
            elif tool.counting:
                _write_counts(tracer, out, stopped)
            else:
                _write_events(tracer, out, stopped, plot)
        except BrokenPipeError:
            pass  # the reader went away (e.g. '| head'): stop quietly, like other tools
    if plot:
        print(plot.draw(), file=err)
    for warning in tracer.warnings:
        print(warning, file=err)
    return 0


def _write_events(tracer: Tracer, out: Writer, stopped: Callable[[], bool], plot: Samples | None) -> None:
    tool = tracer.tool
    render = tool.renderer()
    out.write(render.header() or "")
    line, rows = render.line, tool.rows_of(render)
    for batch in tracer.batches(tool.config.duration, stop=stopped):
        out.write("".join(map(line, rows(batch))))
        if plot:
            plot.add(batch)


def _write_counts(tracer: Tracer, out: Writer, stopped: Callable[[], bool]) -> None:
    """The counts at the end, and with -i at the end of every interval too (each
    report under a line with the time, as bcc's interval tools print them; top
    redraws a terminal's screen with the busiest rows that fit, unless --scroll)."""
    tool = tracer.tool
    render = tool.renderer(counts=True)
    config = tool.config
    every, duration, reports = config.interval, config.duration, config.iterations
    table = config.output.format == "table"
    fd = out.fd
    redraw = tool.redraws and table and not config.output.scroll and fd is not None and os.isatty(fd)
    row = tool.count_row_maker(render)
    end = time.monotonic() + duration if duration else float("inf")
    while True:
        span = min(every or float("inf"), end - time.monotonic())
        for _ in tracer.batches(None if span == float("inf") else max(span, 1e-9), stop=stopped):
            pass  # counting: the kernel hands over no events
        if reports is not None:
            reports -= 1
        done = stopped() or time.monotonic() >= end or reports == 0
        stamp = time.strftime("%H:%M:%S\n") if every and table else ""
        rows = list(map(row, tracer.count_rows()))
        more = ""
        if redraw and fd is not None:
            room = max(1, os.get_terminal_size(fd).lines - 4)  # the time, header and this note
            if len(rows) > room:
                rows, more = rows[:room], f"(and {len(rows) - room} more)\n"
            stamp = CLEAR_SCREEN + stamp
        out.write(stamp + (render.header() or "") + "".join(map(render.line, rows)) + more)
        if done:
            return


def _serve(tracer: Tracer, err: IO[str], stopped: Callable[[], bool]) -> None:
    """Serve /metrics until stopped (or -d), each scrape reading the kernel's counts."""
    from .exporter import MetricsServer
    from .tools.serve import Serve

    tool = tracer.tool
    assert isinstance(tool, Serve)  # the one tool that serves
    server = MetricsServer(tool.config.listen, lambda: tool.families(tracer.source), tool.web)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    print(f"Serving TCP metrics on {server.url}. Ctrl-C to end.", file=err, flush=True)
    try:
        for _ in tracer.batches(tool.config.duration, stop=stopped):
            pass  # counting: the kernel hands over no events
    finally:
        server.shutdown()
        server.server_close()


class Samples:
    """--plot: the events as dicts, kept to be drawn at the end (at most MAX of them)."""

    MAX = 1_000_000

    def __init__(self, tool: Tool) -> None:
        self.tool = tool
        self._render = tool.dict_renderer()
        self._rows = tool.rows_of(self._render)
        self.kept: list[dict[str, Any]] = []
        self.seen = 0

    def add(self, batch: list[Any]) -> None:
        self.seen += len(batch)
        room = self.MAX - len(self.kept)
        if room > 0:
            self.kept.extend(map(self._render.line, self._rows(batch[:room])))

    def draw(self) -> str:
        """Draw the samples; what to tell the user."""
        from .plot import plot_flows

        path = self.tool.config.output.plot
        assert path is not None
        flows = plot_flows(self.kept, path, self.tool.start_time)
        note = f"Drew {len(flows)} flow{'s' if len(flows) != 1 else ''} to {path}"
        if self.seen > len(self.kept):
            note += f" (the first {len(self.kept)} of {self.seen} samples: use -i to take fewer)"
        return note


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP (the terminal went away) end the loop
    cleanly, with the summary, instead of killing the process."""

    def __init__(self) -> None:
        self.requested = False
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


def stdout_writer() -> Writer:
    from .output import Writer

    return Writer(sys.stdout.fileno() if sys.stdout is not None else None)


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
