"""tcpscope retrans: TCP retransmits with their flow, owner and state (tcpretrans)."""

from __future__ import annotations

from typing import Any

from ..ebpf.kernel import tracepoint_field
from ..output import Column, Field, Renderer, flatten
from .common import (
    SOCKET_OPTIONS,
    SocketTool,
    address_columns,
    csv_columns,
    endpoint,
    flow_fields,
    identity_cells,
    identity_decoders,
    owner_columns,
    port_fields,
)

__all__ = ["Retrans"]



class Retrans(SocketTool):
    name = "retrans"
    summary = "TCP retransmits, with their flow, owner and TCP state (tcpretrans)"
    description = """\
One line per retransmitted TCP packet (tcpretrans), from the stable tracepoint
tcp:tcp_retransmit_skb; SEGS is how many segments it carried (more than 1 for a
TSO/GSO packet: the kernel's TcpRetransSegs counts these). T> is R for a retransmit sent and, on kernels whose
tracepoint reports them (6.17+), F for one that failed to go out (JSON "err"
says why); failed ones are never counted as sent. PID is the socket's owner
(learned from sock:inet_sock_set_state as for tcpscope life), not the task
on-CPU, which for timer-driven retransmits is usually none. -c counts per flow
in the kernel and prints the counts at exit, most first. Following owners is
this tool's only cost when nothing is retransmitted, paid per connection;
--no-owner stops it (PID shows -), and so does -c, which shows no owners
(unless -p needs them).

Tail-loss probes (TLP) have no tracepoint of their own: the probe that
re-sends the last segment goes through tcp_retransmit_skb and is shown, but
cannot be told apart from other retransmits (bcc's -l needs a kprobe)."""
    options = (*SOCKET_OPTIONS, "sequence", "count", "no_owner")
    examples = """\
  tcpscope retrans                   # every retransmitted segment
  tcpscope retrans -c -d 30          # count 30 s of retransmits per flow
  tcpscope retrans -D 443 -S         # to HTTPS servers, with sequence numbers
  tcpscope retrans --no-owner        # on a busy host: no per-connection cost"""
    object_name = "retrans"
    full = "retransmits were not counted: too many flows"
    owner_programs = ("retrans_track", "owner_reads", "forget_sock")
    record = "retrans_event"
    record_fields = ("ts_ns", "err", "state", "seq", "segs", "owner", "cpu", "sock", "lport", "rport")
    degraded = ((tracepoint_field("tcp:tcp_retransmit_skb", "err", "6.17"),
                 "retransmits that fail to go out are not seen (only those sent)"),)
    tracing = "TCP retransmits"
    default_time = "wall"  # as tcpretrans
    cells = (
        Field("time", "number", "UNIX time of the retransmit, in seconds", decimals=6),
        *identity_cells(),
        *port_fields(),
        Field("type", "word", '"retransmit" (sent) or "failed" (the kernel could not send it)'),
        Field("err", "number", "0, or the negative errno of a failed retransmit"),
        Field("state", "word", 'the socket\'s TCP state, e.g. "ESTABLISHED"'),
        Field("seq", "number", "the segment's first sequence number"),
        Field("segs", "number", "the segments it carried: more than 1 for a TSO/GSO packet (what the kernel "
              "adds to TcpRetransSegs)"),
    )
    fields = flatten(cells)

    def _states(self) -> dict[int, str]:
        return {v: k.removeprefix("TCP_") for k, v in self.spec.btf.enum("tcp_state").items()}

    def columns(self) -> list[Column]:
        sequence = [Column("SEQ", "seq")] if self.config.sequence else []
        if self.csv:
            return (owner_columns(True) + address_columns(True)
                    + [Column("TYPE", "type"), Column("STATE", "state"), Column("SEGS", "segs")] + sequence)
        width = 46 if self.wide else 20
        return [
            Column("PID", "pid", 7),
            Column("IP", "family", 2),
            Column("LADDR:LPORT", "laddr", width, text=endpoint, more=("lport",)),
            Column("T>", "type", 2, text=lambda t: "R>" if t == "retransmit" else "F>"),
            Column("RADDR:RPORT", "raddr", width, text=endpoint, more=("rport",)),
            Column("STATE", "state", 11),
            Column("SEGS", "segs", 4 if sequence else 0, right=bool(sequence)),
        ] + sequence

    def row_maker(self, render: Renderer) -> Any:
        offset = self.clock_offset_ns
        owner_of, cpu_of, sock_of = self.identity_converters(render)
        states = self._states()

        def row(r: tuple[Any, ...]) -> tuple[Any, ...]:
            ts, err, state, seq, segs, owner, cpu, sock, lport, rport = r
            return ((ts + offset) / 1e9, owner_of(owner), cpu_of(cpu), sock_of(sock), lport, rport,
                    "failed" if err else "retransmit", err, states.get(state, str(state)), seq, segs)

        return row

    count_map = ("flow_key", "flow_count")
    count_cells = (
        *flow_fields(),
        Field("retransmits", "number", "retransmits sent"),
        Field("failed", "number", "retransmits that failed to go out (6.17+)"),
        Field("segments", "number", "segments the retransmits sent carried (what TcpRetransSegs counts)"),
    )

    def count_columns(self) -> list[Column]:
        if self.csv:
            return csv_columns(self.count_cells)
        return [
            Column("LADDR:LPORT", "laddr", 25, text=endpoint, more=("lport",)),
            Column("<->", "", 3, table_only=True),
            Column("RADDR:RPORT", "raddr", 25, text=endpoint, more=("rport",)),
            Column("RETRANSMITS", "retransmits", 11, right=True),
            Column("SEGMENTS", "segments", 8, right=True),
            Column("FAILED", "failed", 6, right=True),
        ]

    def counted(self, items: list[tuple[Any, Any]]) -> list[tuple[Any, ...]]:
        """The per-flow counts (map keys and values), most first."""
        sock = identity_decoders(self.spec)["sock"]
        flows = []
        for key, value in items:
            family, laddr, raddr, netns = sock(key.sock)
            flows.append((family, laddr, key.lport, raddr, key.rport, netns, value.sent, value.failed,
                          value.segments))
        flows.sort(key=lambda f: (-(f[6] + f[7]), f[1], f[2]))
        return flows
