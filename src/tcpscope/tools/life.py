"""tcpscope life: TCP sessions with their lifespan and bytes, like tcplife."""

from __future__ import annotations

from typing import Any

from ..output import Column, Field, Renderer, flatten
from .common import (
    SOCKET_OPTIONS,
    SocketTool,
    address_columns,
    identity_cells,
    kilobytes,
    owner_columns,
    port_fields,
)

__all__ = ["Life"]


class Life(SocketTool):
    name = "life"
    summary = "one line per closed TCP session: owner, addresses, bytes, lifespan (tcplife)"
    description = """\
One line per TCP session, printed when it closes (tcplife). Traces only the
stable tracepoint sock:inet_sock_set_state (plus tcp:tcp_rcv_space_adjust to
learn who reads a passive socket).

PID/COMM name the process that owns the socket: the one that called connect(),
or, for an accepted socket, the one that read from or closed it. Until that is
seen, an accepted socket shows its listener's process (JSON "owner":
"listener"); "-" means no owner was seen. TX_KB/RX_KB are payload bytes acked
by the peer and received (SYN and FIN not counted); -s and -j give exact bytes.
MS is the time from connect() or the first SYN received to the close.
Sessions that began before tracing are not shown; their number is printed at
exit."""
    options = SOCKET_OPTIONS
    examples = """\
  tcpscope life                      # every TCP session as it closes
  tcpscope life -L 80,443 -T         # this host's web server's sessions, with wall time
  tcpscope life -p 1234 -j           # one process's sessions, as JSON lines
  tcpscope life -N /var/run/netns/web -w   # one namespace, full IPv6 addresses"""
    object_name = "life"
    record = "life_event"
    record_fields = ("ts_ns", "span_ns", "tx_bytes", "rx_bytes", "owner", "cpu", "sock", "lport", "rport")
    tracing = "TCP session lifespans"
    skipped = "sessions"
    cells = (
        Field("time", "number", "UNIX time of the close, in seconds", decimals=6),
        *identity_cells(),
        *port_fields(),
        Field("tx_bytes", "number", "payload bytes sent and acknowledged by the peer"),
        Field("rx_bytes", "number", "payload bytes received"),
        Field("duration_ms", "number", "lifespan in milliseconds, from connect() or the first SYN",
              decimals=6),
    )
    fields = flatten(cells)

    def columns(self) -> list[Column]:
        wide = self.wide
        kb = 6 if wide else 5
        return owner_columns(wide) + address_columns(wide) + [
            Column("TX_KB", "tx_bytes", kb, right=True, text=kilobytes, csv_header="TX_BYTES"),
            Column("RX_KB", "rx_bytes", kb, right=True, text=kilobytes, csv_header="RX_BYTES"),
            Column("MS", "duration_ms", text=lambda ms: f"{ms:.2f}"),
        ]

    def row_maker(self, render: Renderer) -> Any:
        offset = self.clock_offset_ns
        owner_of, cpu_of, sock_of = self.identity_converters(render)

        def row(r: tuple[Any, ...]) -> tuple[Any, ...]:
            ts, span, tx, rx, owner, cpu, sock, lport, rport = r
            return ((ts + offset) / 1e9, owner_of(owner), cpu_of(cpu), sock_of(sock), lport, rport, tx, rx,
                    span / 1e6)

        return row

    def exit_notes(self, counters: Any) -> list[str]:
        if not counters.preexisting:
            return []
        return [f"{counters.preexisting} sessions that began before tracing started ended "
                "during it and are not shown"]
