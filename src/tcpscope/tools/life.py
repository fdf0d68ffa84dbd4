"""tcpscope life: TCP sessions with their lifespan and bytes, like tcplife."""

from __future__ import annotations

from typing import Any

from .._output import Column
from .._tool import Tool
from ._common import SocketFields, address_columns, owner_columns

__all__ = ["Life"]


class Life(Tool):
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
    options = ("time", "timestamp", "wide", "csv", "json", "pid", "localport", "remoteport",
               "ipv4", "ipv6", "netns", "duration", "verbose")
    object_name = "life"
    record = "life_event"
    tracing = "TCP session lifespans"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket = SocketFields(self.spec.btf.enum("owner_kind"))

    def columns(self) -> list[Column]:
        wide = self.args.wide or self.args.csv
        kb = 6 if wide else 5
        return owner_columns(wide) + address_columns(wide) + [
            Column("TX_KB", "tx_bytes", kb, right=True, text=lambda b: str(b // 1024), csv_header="TX_BYTES"),
            Column("RX_KB", "rx_bytes", kb, right=True, text=lambda b: str(b // 1024), csv_header="RX_BYTES"),
            Column("MS", "duration_ms", text=lambda ms: f"{ms:.2f}"),
        ]

    def fields(self, r: Any) -> dict[str, Any]:
        s = self.socket
        known = r.owner != s.unknown
        return {
            "time": self.unix_time(r.ts_ns),
            "pid": r.pid if known else None,
            "comm": s.name(r.comm) if known else None,
            "owner": s.owners[r.owner],
            "family": s.family(r.family),
            "laddr": s.address(r.family, r.laddr),
            "lport": r.lport,
            "raddr": s.address(r.family, r.raddr),
            "rport": r.rport,
            "tx_bytes": r.tx_bytes,
            "rx_bytes": r.rx_bytes,
            "duration_ms": r.span_ns / 1e6,
            "netns": r.netns,
        }

    def exit_notes(self, counters: Any) -> list[str]:
        if not counters.preexisting:
            return []
        return [f"{counters.preexisting} sessions that began before tracing started ended "
                "during it and are not shown"]
