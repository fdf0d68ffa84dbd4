"""tcpscope connect and connlat: active TCP opens, their latency and outcome."""

from __future__ import annotations

import errno
from typing import Any, ClassVar

from ..net import parse_milliseconds
from ..options import Option
from ..output import Column, Field, Renderer, flatten
from .common import (
    SOCKET_OPTIONS,
    SocketTool,
    identity_cells,
    identity_decoders,
    port_fields,
    process_ip_columns,
)

__all__ = ["Connect", "Connlat"]

_RESULTS = {errno.ECONNREFUSED: "refused", errno.ETIMEDOUT: "timed out", 0: "aborted"}


def _ms(latency: float) -> str:
    return f"{latency:.2f}"


class Connect(SocketTool):
    name = "connect"
    summary = "active TCP connects with their latency and outcome (tcpconnect + tcpconnlat)"
    description = """\
One line per connect(), when it ends (tcpconnect and tcpconnlat in one): from
the stable tracepoint sock:inet_sock_set_state, CLOSE -> SYN_SENT (inside
connect(), so PID/COMM is the caller) to SYN_SENT -> ESTABLISHED or -> CLOSE
(for a simultaneous open, to the end of the SYN_RECV it passes through).
LAT(ms) is the time from connect() to the answer (or to giving up). RESULT is
established, refused (a RST answered), timed out, aborted (closed by the
program before an answer) or failed; JSON "error" has the socket's error by
name. -c counts per source, destination and port in the kernel and prints the
counts at exit; --min-ms shows only connects that took at least that long."""
    options: ClassVar[tuple[str, ...]] = (*SOCKET_OPTIONS, "count", "min_ms")
    examples = """\
  tcpscope connect                   # every connect() with its latency and outcome
  tcpscope connect --min-ms 100      # only slow ones
  tcpscope connect -c -d 60          # count a minute of connects per destination
  tcpscope connect -p 1234 -j        # one process's connects, as JSON lines"""
    object_name = "connect"
    full = "connects were not counted: too many destinations"
    record = "connect_event"
    record_fields = ("ts_ns", "latency_ns", "newstate", "err", "owner", "cpu", "sock", "lport", "rport")
    tracing = "TCP connects"
    skip_programs = ("owner_reads",)  # connect() names the owner
    cells = (
        Field("time", "number", "UNIX time the connect ended, in seconds", decimals=6),
        *identity_cells(),
        *port_fields(),
        Field("latency_ms", "number", "milliseconds from connect() to the answer, or to giving up",
              decimals=6),
        Field("result", "word", '"established", "refused", "timed out", "aborted" or "failed"'),
        Field("error", "word", 'the socket\'s error by name (e.g. "ECONNREFUSED"), null when established',
              True),
    )
    fields = flatten(cells)

    def constants(self) -> dict[str, Any]:
        values = super().constants()
        if self.config.min_ms:
            values["min_latency_ns"] = int(self.config.min_ms * 1e6)
        return values

    def columns(self) -> list[Column]:
        wide = self.wide
        width = 39 if wide else 16
        columns = [*process_ip_columns(wide), Column("SADDR", "laddr", width)]
        if wide:
            columns.append(Column("SPORT", "lport", 5))
        columns += [Column("DADDR", "raddr", width), Column("DPORT", "rport", 5),
                    Column("LAT(ms)", "latency_ms", 7, right=True, text=_ms)]
        if self.show_result:
            columns.append(Column("RESULT", "result"))
        return columns

    show_result = True  # connlat is tcpconnlat's view: latency only

    def row_maker(self, render: Renderer) -> Any:
        offset = self.clock_offset_ns
        owner_of, cpu_of, sock_of = self.identity_converters(render)
        error = render.convert("error")
        established = self.spec.btf.enum("tcp_state")["TCP_ESTABLISHED"]

        def row(r: tuple[Any, ...]) -> tuple[Any, ...]:
            ts, latency, newstate, err, owner, cpu, sock, lport, rport = r
            result, name = "established", None
            if newstate != established:
                result = _RESULTS.get(err, "failed")
                name = errno.errorcode.get(err, str(err)) if err else None
            return ((ts + offset) / 1e9, owner_of(owner), cpu_of(cpu), sock_of(sock), lport, rport,
                    latency / 1e6, result, error(name))

        return row

    count_map = ("dest_key", "dest_count")
    count_cells = (
        Field("connects", "number", "connects that ended"),
        Field("family", "number", "4 or 6"),
        Field("laddr", "word", "local address"),
        Field("raddr", "word", "remote address"),
        Field("rport", "number", "remote port"),
        Field("netns", "number", "inode number of the socket's network namespace"),
        Field("established", "number", "connects that were established"),
        Field("failed", "number", "connects that were not (refused, timed out, aborted, failed)"),
    )

    def count_columns(self) -> list[Column]:
        if self.csv:
            return [Column("IP", "family"), Column("LADDR", "laddr"), Column("RADDR", "raddr"),
                    Column("RPORT", "rport"), Column("NETNS", "netns"), Column("CONNECTS", "connects"),
                    Column("ESTABLISHED", "established"), Column("FAILED", "failed")]
        return [Column("LADDR", "laddr", 25), Column("RADDR", "raddr", 25), Column("RPORT", "rport", 6),
                Column("CONNECTS", "connects", 8, right=True), Column("FAILED", "failed", 6, right=True)]

    def counted(self, items: list[tuple[Any, Any]]) -> list[tuple[Any, ...]]:
        """Connects per source, destination and port (map keys and values), most first."""
        sock = identity_decoders(self.spec)["sock"]
        dests = []
        for key, value in items:
            family, laddr, raddr, netns = sock(key.sock)
            dests.append((value.established + value.failed, family, laddr, raddr, key.rport, netns,
                          value.established, value.failed))
        dests.sort(key=lambda d: (-d[0], d[2], d[3], d[4]))
        return dests


class Connlat(Connect):
    name = "connlat"
    summary = "active TCP connect latency, bcc's tcpconnlat view"
    description = """\
Connect latency (tcpconnlat): one line per connect() that the peer answered
(established, or refused by a RST), with the time from connect() to the answer.
From the stable tracepoint sock:inet_sock_set_state only. MIN_MS (positional)
shows only connects that took at least that many milliseconds; the filter runs
in the kernel. See 'tcpscope connect' for every outcome, timeouts included."""
    options = SOCKET_OPTIONS
    examples = """\
  tcpscope connlat                   # connect latency, tcpconnlat's columns
  tcpscope connlat 10                # only connects that took 10 ms or more
  tcpscope connlat -D 443 -T         # to HTTPS servers, with wall time"""
    arguments = (Option((), "min_ms", "only connects that took at least this many milliseconds",
                        parse_milliseconds, "MIN_MS", nargs="?"),)
    tracing = "TCP connect latency"
    show_result = False

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "answered_only": 1}
