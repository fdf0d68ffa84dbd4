"""tcpscope states: every TCP state change with the time spent in the old state."""

from __future__ import annotations

from typing import Any

from .._output import Column
from .._tool import Tool
from ._common import SocketFields, address_columns, owner_columns

__all__ = ["States"]


class States(Tool):
    name = "states"
    summary = "one line per TCP state change, with the time spent in the old state (tcpstates)"
    description = """\
One line per TCP state change (tcpstates), from the stable tracepoint
sock:inet_sock_set_state (plus tcp:tcp_rcv_space_adjust to learn who reads a
passive socket).

PID/COMM name the process that owns the socket, not whoever was on-CPU (JSON
adds cpu_pid/cpu_comm for that). An accepted socket shows its listener's
process until its own reader or closer is seen (JSON "owner": "listener").
MS is the time spent in OLDSTATE; "-" when that state began before the socket
was seen (the first change of a new socket, or any socket that existed before
tracing; those are counted at exit). CLOSE -> SYN_SENT has no local port yet:
LPORT shows 0, as the kernel reports it."""
    options = ("time", "timestamp", "wide", "csv", "json", "pid", "localport", "remoteport",
               "ipv4", "ipv6", "netns", "duration", "verbose")
    object_name = "states"
    record = "state_event"
    tracing = "TCP state changes"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket = SocketFields(self.spec.btf.enum("owner_kind"))
        # enum tcp_state in bpf/common.h: 1 -> "ESTABLISHED", ...
        self.state_names = {v: k.removeprefix("TCP_") for k, v in self.spec.btf.enum("tcp_state").items()}

    def state(self, value: int) -> str:
        return self.state_names.get(value) or str(value)

    def columns(self) -> list[Column]:
        wide = self.args.wide or self.args.csv
        return [Column("SKADDR", "skaddr", 16)] + owner_columns(wide) + address_columns(wide) + [
            Column("OLDSTATE", "oldstate", 11),
            Column("->", "", 2, table_only=True),
            Column("NEWSTATE", "newstate", 11),
            Column("MS", "duration_ms", text=lambda ms: f"{ms:.3f}"),
        ]

    def fields(self, r: Any) -> dict[str, Any]:
        s = self.socket
        known = r.owner != s.unknown
        return {
            "time": self.unix_time(r.ts_ns),
            "skaddr": f"{r.skaddr:x}",
            "pid": r.pid if known else None,
            "comm": s.name(r.comm) if known else None,
            "owner": s.owners[r.owner],
            "cpu_pid": r.cpu_pid,
            "cpu_comm": s.name(r.cpu_comm),
            "family": s.family(r.family),
            "laddr": s.address(r.family, r.laddr),
            "lport": r.lport,
            "raddr": s.address(r.family, r.raddr),
            "rport": r.rport,
            "oldstate": self.state(r.oldstate),
            "newstate": self.state(r.newstate),
            "duration_ms": r.delta_ns / 1e6 if r.delta_ns else None,
            "netns": r.netns,
        }

    def exit_notes(self, counters: Any) -> list[str]:
        if not counters.preexisting:
            return []
        return [f"{counters.preexisting} sockets existed before tracing started; "
                "their first change's MS is unknown (-)"]
