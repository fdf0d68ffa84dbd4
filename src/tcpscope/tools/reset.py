"""tcpscope reset: TCP RSTs sent and received, with the reason the kernel gives."""

from __future__ import annotations

from typing import Any

from ..ebpf.kernel import tracepoint_field
from ..ebpf.tracefs import read_format
from ..output import Column, Field, Renderer, flatten
from .common import (
    SOCKET_OPTIONS,
    SocketTool,
    address_columns,
    endpoint,
    identity_cells,
    owner_columns,
    port_fields,
)

__all__ = ["Reset"]



class Reset(SocketTool):
    name = "reset"
    summary = "TCP RSTs sent and received, with state and the kernel's reason"
    description = """\
One line per TCP RST sent (tcp:tcp_send_reset) or received (tcp:tcp_receive_reset).
DIR is > for sent, < for received. STATE is the socket's state (- when the kernel
sent the RST with no socket, e.g. for a closed port; then LADDR:LPORT is the
address the packet was sent to). REASON is why it was sent, by the name the
running kernel gives it (its tcp_send_reset format file, 6.10+), never from a
table of ours; received RSTs have none. PID/COMM is the socket's owner, learned
as for tcpscope life. RSTs that netfilter sends (nftables 'reject with tcp
reset') are not TCP's: only their reception is seen. Following owners is this
tool's only cost when no RST is seen, paid per connection; --no-owner stops it
(PID/COMM show -). Before Linux 6.10 the kernel fires tcp_send_reset only for
RSTs sent on a full socket: those sent with none (to a closed port), from
TIME_WAIT or during a handshake are not seen there, and none has a reason;
tcpscope says so at start."""
    options = (*SOCKET_OPTIONS, "no_owner")
    examples = """\
  tcpscope reset                     # every RST sent and received
  tcpscope reset -L 8080 -j          # on port 8080, as JSON lines with the reason
  tcpscope reset --no-owner          # on a busy host: no per-connection cost"""
    object_name = "reset"
    owner_programs = ("reset_track", "owner_reads", "forget_sock")
    record = "reset_event"
    record_fields = ("ts_ns", "state", "reason", "sent", "owner", "cpu", "sock", "lport", "rport")
    tracing = "TCP resets"
    # Before 6.10 the tracepoint fires only for RSTs sent on a full socket.
    REASONS = tracepoint_field("tcp:tcp_send_reset", "reason", "6.10")
    degraded = ((REASONS, "RSTs sent without a full socket (to a closed port, from TIME_WAIT or a "
                 "handshake) are not seen, and sent RSTs have no reason"),)
    cells = (
        Field("time", "number", "UNIX time of the RST, in seconds", decimals=6),
        *identity_cells(),
        *port_fields(),
        Field("direction", "word", '"sent" or "received"'),
        Field("state", "word", "the socket's TCP state; null when sent with no socket", True),
        Field("reason", "word", "why the kernel sent it, by its own name; null for received RSTs", True),
    )
    fields = flatten(cells)

    def columns(self) -> list[Column]:
        if self.csv:
            return (owner_columns(True) + address_columns(True)
                    + [Column("DIR", "direction"), Column("STATE", "state"), Column("REASON", "reason")])
        width = 46 if self.wide else 21
        return [
            Column("PID", "pid", 7),
            Column("COMM", "comm", 16 if self.wide else 10, truncate=True),
            Column("LADDR:LPORT", "laddr", width, text=endpoint, more=("lport",)),
            Column("DIR", "direction", 3, text=lambda d: ">" if d == "sent" else "<"),
            Column("RADDR:RPORT", "raddr", width, text=endpoint, more=("rport",)),
            Column("STATE", "state", 11),
            Column("REASON", "reason"),
        ]

    def row_maker(self, render: Renderer) -> Any:
        offset = self.clock_offset_ns
        owner_of, cpu_of, sock_of = self.identity_converters(render)
        state_of, reason_of = render.convert("state"), render.convert("reason")
        states = {v: k.removeprefix("TCP_") for k, v in self.spec.btf.enum("tcp_state").items()}
        # The running kernel's names for enum sk_rst_reason (none before 6.10).
        reasons = read_format("tcp:tcp_send_reset").symbols.get("reason", {})
        has_reasons = self.REASONS.present()

        def row(r: tuple[Any, ...]) -> tuple[Any, ...]:
            ts, state, reason, sent, owner, cpu, sock, lport, rport = r
            state_name = states.get(state, str(state)) if state else None
            reason_name = reasons.get(reason, str(reason)) if sent and has_reasons else None
            return ((ts + offset) / 1e9, owner_of(owner), cpu_of(cpu), sock_of(sock), lport, rport,
                    "sent" if sent else "received", state_of(state_name), reason_of(reason_name))

        return row
