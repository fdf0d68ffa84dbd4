"""tcpscope synack: SYN-ACK retransmits per listener, with its accept queue."""

from __future__ import annotations

from typing import Any

from ..output import Column, Field, Renderer, flatten
from .common import (
    SOCKET_OPTIONS,
    SocketTool,
    address_columns,
    endpoint,
    identity_cells,
    identity_decoders,
    owner_columns,
    port_fields,
)

__all__ = ["Synack"]


class Synack(SocketTool):
    name = "synack"
    summary = "SYN-ACK retransmits per listener, with its accept queue: server saturation"
    description = """\
One line per retransmitted SYN-ACK, from the stable tracepoint
tcp:tcp_retransmit_synack: a client's SYN was answered but its final ACK has
not arrived, because it was lost or because the listener is saturated (its
accept queue full, so the kernel drops completed handshakes). BL is the
listener's accept queue at that moment, queued/limit (sk_ack_backlog /
sk_max_ack_backlog); RETRANS how often this SYN-ACK was retransmitted before.
PID/COMM is the listening socket's owner, for listeners that started while
tracing (otherwise "-"). LADDR/LPORT is the listener's side, RADDR/RPORT the
client. -c counts per listener in the kernel and prints the counts at exit.
The kernel counts these and client SYN retransmits together as TCPSynRetrans."""
    options = (*SOCKET_OPTIONS, "count")
    examples = """\
  tcpscope synack                    # every SYN-ACK retransmit, with the accept queue
  tcpscope synack -c -d 60           # count a minute of them per listener
  tcpscope synack -L 80,443          # only for these listeners"""
    object_name = "synack"
    full = "SYN-ACK retransmits were not counted: too many listeners"
    record = "synack_event"
    record_fields = ("ts_ns", "backlog", "max_backlog", "retrans", "owner", "cpu", "sock", "lport", "rport")
    tracing = "SYN-ACK retransmits"
    skip_programs = ("owner_reads", "forget_sock")  # owners from listen(); entries end at close
    cells = (
        Field("time", "number", "UNIX time of the retransmit, in seconds", decimals=6),
        *identity_cells(),
        *port_fields(),
        Field("backlog", "number", "connections in the listener's accept queue"),
        Field("max_backlog", "number", "the accept queue's limit"),
        Field("retrans", "number", "how many times this SYN-ACK was retransmitted before"),
    )
    fields = flatten(cells)

    def columns(self) -> list[Column]:
        wide = self.wide
        if self.csv:
            queue = [Column("BACKLOG", "backlog"), Column("MAX_BACKLOG", "max_backlog")]
        else:
            queue = [Column("BL", "backlog", 9, text=lambda n, limit: f"{n}/{limit}", more=("max_backlog",))]
        return owner_columns(wide) + address_columns(wide) + queue + [Column("RETRANS", "retrans")]

    def row_maker(self, render: Renderer) -> Any:
        offset = self.clock_offset_ns
        owner_of, cpu_of, sock_of = self.identity_converters(render)

        def row(r: tuple[Any, ...]) -> tuple[Any, ...]:
            ts, backlog, max_backlog, retrans, owner, cpu, sock, lport, rport = r
            return ((ts + offset) / 1e9, owner_of(owner), cpu_of(cpu), sock_of(sock), lport, rport, backlog,
                    max_backlog, retrans)

        return row

    count_map = ("listener_key", "counter")
    count_cells = (
        Field("retransmits", "number", "SYN-ACK retransmits"),
        Field("family", "number", "4 or 6"),
        Field("laddr", "word", "the listener's address"),
        Field("lport", "number", "the listener's port"),
        Field("netns", "number", "inode number of the listener's network namespace"),
    )

    def count_columns(self) -> list[Column]:
        if self.csv:
            return [Column("IP", "family"), Column("LADDR", "laddr"), Column("LPORT", "lport"),
                    Column("NETNS", "netns"), Column("RETRANSMITS", "retransmits")]
        return [Column("LISTENER", "laddr", 47, text=endpoint, more=("lport",)),
                Column("SYNACK_RETRANSMITS", "retransmits", 18, right=True)]

    def counted(self, items: list[tuple[Any, Any]]) -> list[tuple[Any, ...]]:
        """SYN-ACK retransmits per listener (map keys and values), most first."""
        sock = identity_decoders(self.spec)["sock"]
        listeners = []
        for key, count in items:
            family, laddr, _raddr, netns = sock(key.sock)
            listeners.append((count.value, family, laddr, key.lport, netns))
        listeners.sort(key=lambda x: (-x[0], x[2], x[3]))
        return listeners
