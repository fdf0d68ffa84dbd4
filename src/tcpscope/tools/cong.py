"""tcpscope cong: time each flow spends in each congestion state (tcpcong), or each change."""

from __future__ import annotations

import struct
import time
from typing import Any

from ..ebpf.kernel import tracepoint_field
from ..output import Column, Field, Renderer, flatten
from .common import (
    SOCKET_OPTIONS,
    SocketTool,
    ca_state_names,
    csv_columns,
    endpoint,
    flow_fields,
    identity_cells,
    identity_decoders,
    owner_columns,
    port_fields,
)

__all__ = ["Cong"]

STATES = ("open", "disorder", "cwr", "recovery", "loss")  # enum tcp_ca_state's order


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f}"


class Cong(SocketTool):
    name = "cong"
    summary = "time each flow spends in each congestion state, or each change (tcpcong)"
    description = """\
How long each TCP flow spends in each congestion-control state (tcpcong), from
the stable tracepoint tcp:tcp_cong_state_set: open (normal), disorder (duplicate
ACKs or SACKs seen), cwr (the window cut after an ECN signal or a local
congestion), recovery (fast retransmit), loss (a retransmission timeout). The
time is kept per flow in the kernel and printed at exit, and with -i at the end
of every interval too (each flow's time since it was established, or since
tracing began for flows established before; the current state's time runs
until now, a closed flow's stops at its close). Only flows that changed state
after their handshake are shown. -e prints one line per change instead (every
time the tracepoint fires, also during handshakes and after the close), with the
time spent in the state it leaves. The state names are the running kernel's
(enum tcp_ca_state)."""
    options = (*SOCKET_OPTIONS, "interval", "iterations", "events")
    examples = """\
  tcpscope cong -i 5                 # every 5 s, each flow's time in each state so far
  tcpscope cong -e -D 443            # each state change of connections to HTTPS servers
  tcpscope cong -d 60 -j             # a minute, then the flows as JSON lines"""
    object_name = "cong"
    record = "cong_event"
    owner_programs = ("owner_reads", "forget_sock")  # with cong_track's track_owner(): for -e and -p
    record_fields = ("ts_ns", "in_old_ns", "old_state", "new_state", "tcp_state", "owner", "cpu", "sock",
                     "lport", "rport")
    requires = (tracepoint_field("tcp:tcp_cong_state_set", "cong_state", "5.19"),)
    tracing = "TCP congestion states"
    skipped = "state changes"
    full = ("flows or state changes could not be stored (too many flows): "
            "some flows' times are missing or partial")
    cells = (
        Field("time", "number", "UNIX time of the change, in seconds", decimals=6),
        *identity_cells(),
        *port_fields(),
        Field("old_state", "word", "the state left"),
        Field("new_state", "word", "the state entered"),
        Field("old_ms", "number", "milliseconds spent in the state left; null when its start was not seen",
              True, decimals=6),
        Field("tcp_state", "word", 'the socket\'s TCP state, e.g. "ESTABLISHED" (the kernel also sets the '
              'congestion state in handshakes and after the close)'),
    )
    fields = flatten(cells)
    count_map = ("cong_key", "cong_flow")
    count_cells = (
        *flow_fields(),
        *(Field(f"{state}_ms", "number", f"milliseconds in the {state} state", decimals=3)
          for state in STATES),
        Field("changes", "number", "state changes"),
        Field("state", "word", "the state now (at the close, for a closed flow)"),
        Field("closed", "json", "whether the flow has closed (true or false)"),
    )

    @property
    def counting(self) -> bool:
        return not self.config.events

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "events_only": int(self.config.events)}

    def columns(self) -> list[Column]:
        width = 46 if self.wide else 21
        return owner_columns(self.wide) + [
            Column("LADDR:LPORT", "laddr", width, text=endpoint, more=("lport",)),
            Column("RADDR:RPORT", "raddr", width, text=endpoint, more=("rport",)),
            Column("OLD", "old_state", 8),
            Column("->", "", 2, table_only=True),
            Column("NEW", "new_state", 8),
            Column("OLD_MS", "old_ms", 10, right=True, text=lambda ms: f"{ms:.3f}"),
            Column("TCP_STATE", "tcp_state"),
        ]

    def row_maker(self, render: Renderer) -> Any:
        offset = self.clock_offset_ns
        owner_of, cpu_of, sock_of = self.identity_converters(render)
        old_ms_of = render.convert("old_ms")
        names = ca_state_names(self.spec)
        tcp_states = {v: k.removeprefix("TCP_") for k, v in self.spec.btf.enum("tcp_state").items()}

        def row(r: tuple[Any, ...]) -> tuple[Any, ...]:
            ts, in_old, old, new, tcp_state, owner, cpu, sock, lport, rport = r
            return ((ts + offset) / 1e9, owner_of(owner), cpu_of(cpu), sock_of(sock), lport, rport,
                    names.get(old, str(old)), names.get(new, str(new)),
                    old_ms_of(in_old / 1e6 if in_old else None), tcp_states.get(tcp_state, str(tcp_state)))

        return row

    def count_columns(self) -> list[Column]:
        if self.csv:
            return csv_columns(self.count_cells)
        width = 46 if self.wide else 21
        return [
            Column("LADDR:LPORT", "laddr", width, text=endpoint, more=("lport",)),
            Column("RADDR:RPORT", "raddr", width, text=endpoint, more=("rport",)),
            *(Column(f"{state.upper()}(ms)", f"{state}_ms", 12, right=True, text=lambda ms: f"{ms:.3f}")
              for state in STATES),
            Column("CHANGES", "changes", 7, right=True),
            Column("STATE", "state", text=lambda state, closed: f"{state} (closed)" if closed else state,
                   more=("closed",)),
        ]

    def counted(self, items: list[tuple[Any, Any]]) -> list[tuple[Any, ...]]:
        """Each flow's time in each state (the current one's running until now),
        the flows with most time out of the open state first."""
        sock = identity_decoders(self.spec)["sock"]
        names = ca_state_names(self.spec)
        now = time.monotonic_ns()  # the clock of bpf_ktime_get_ns()
        flows = []
        for _key, flow in items:
            ns = list(struct.unpack(f"<{len(STATES)}Q", flow.ns))  # __u64 ns[CA_STATES]
            if not flow.closed and flow.state < len(ns):
                ns[flow.state] += max(0, now - flow.changed_ns)
            family, laddr, raddr, netns = sock(flow.sock)
            flows.append((family, laddr, flow.lport, raddr, flow.rport, netns, *(n / 1e6 for n in ns),
                          flow.changes, names.get(flow.state, str(flow.state)), bool(flow.closed)))
        flows.sort(key=lambda f: (-sum(f[7:11]), f[1], f[2], f[4]))
        return flows
