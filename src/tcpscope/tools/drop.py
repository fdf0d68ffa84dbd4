"""tcpscope drop: TCP packets the kernel dropped, with its reason (tcpdrop)."""

from __future__ import annotations

from typing import Any

from ..ebpf.kernel import tracepoint_field
from ..ebpf.symbols import KernelSymbols
from ..ebpf.tracefs import read_format
from ..output import Column, Field, Renderer, flatten
from .common import (
    SOCKET_OPTIONS,
    SocketTool,
    endpoint,
    identity_cells,
    port_fields,
)

__all__ = ["Drop"]

TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")



def tcp_flags(byte: int) -> str:
    return "|".join(name for bit, name in enumerate(TCP_FLAGS) if byte >> bit & 1)


class Drop(SocketTool):
    name = "drop"
    summary = "TCP packets the kernel dropped, with its reason and TCP flags (tcpdrop)"
    description = """\
One line per TCP packet the kernel dropped (tcpdrop), from the stable
tracepoint skb:kfree_skb; only TCP packets, checked in the packet's IP header.
SADDR:SPORT > DADDR:DPORT is the packet's own direction. REASON is the drop
reason by the name the running kernel gives it (its kfree_skb format file),
never from a table of ours. STATE is the socket's, when there is one. PID/COMM
is the owner of the receiving socket (6.11+ passes it to the tracepoint), else
"-": for other drops the kernel offers BPF no socket it may look the owner up
by. --stack adds the kernel stack of each drop, symbolized from /proc/kallsyms.
Following owners costs a little per connection; --no-owner stops it (PID/COMM
show -)."""
    options = (*SOCKET_OPTIONS, "stack", "no_owner")
    examples = """\
  tcpscope drop                      # every TCP packet the kernel dropped, and why
  tcpscope drop --stack              # with each drop's kernel stack
  tcpscope drop -D 443 -s            # drops to or from port 443, as CSV"""
    object_name = "drop"
    record = "drop_event"
    record_fields = ("ts_ns", "reason", "state", "stack_bytes", "flags", "owner", "cpu", "sock", "lport",
                     "rport", "stack")
    tracing = "TCP drops"
    requires = (tracepoint_field("skb:kfree_skb", "reason", "5.17"),)
    degraded = ((tracepoint_field("skb:kfree_skb", "rx_sk", "6.11"),
                 "the owners of receiving sockets are not known (PID/COMM show -)"),)
    skip_programs = ("owner_reads",)
    owner_programs = ("drop_track", "forget_sock")
    cells = (
        Field("time", "number", "UNIX time of the drop, in seconds", decimals=6),
        *identity_cells(),
        *port_fields(),
        Field("reason", "word", "why the kernel dropped it, by the running kernel's name"),
        Field("state", "word", "the socket's TCP state; null without a socket", True),
        Field("flags", "word", 'the TCP header\'s flags, e.g. "SYN" or "PSH|ACK"'),
        Field("stack", "text", "with --stack: the kernel stack, innermost first; else null", True),
    )
    fields = flatten(cells)

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "with_stack": int(bool(self.config.stack))}

    def columns(self) -> list[Column]:
        width = 46 if self.wide else 21
        columns = [
            Column("PID", "pid", 7),
            Column("COMM", "comm", 16 if self.wide else 10, truncate=True),
            Column("SADDR:SPORT", "laddr", width, text=endpoint, more=("lport",)),
            Column(">", "", 1, table_only=True),
            Column("DADDR:DPORT", "raddr", width, text=endpoint, more=("rport",)),
            Column("STATE", "state", 11),
            Column("FLAGS", "flags", 11),
            Column("REASON", "reason"),
        ]
        if self.csv:
            columns = [Column("PID", "pid"), Column("COMM", "comm"), Column("SADDR", "laddr"),
                       Column("SPORT", "lport"), Column("DADDR", "raddr"), Column("DPORT", "rport"),
                       Column("STATE", "state"), Column("FLAGS", "flags"), Column("REASON", "reason")]
        if self.config.stack and self.csv:
            columns.append(Column("STACK", "stack"))  # frames joined by " <- ", as in JSON
        elif self.config.stack:
            columns.append(Column("", "stack", text=lambda stack: "\n\t" + stack.replace(" <- ", "\n\t")))
        return columns

    def row_maker(self, render: Renderer) -> Any:
        offset = self.clock_offset_ns
        owner_of, cpu_of, sock_of = self.identity_converters(render)
        state_of, stack_of = render.convert("state"), render.convert("stack")
        states = {v: k.removeprefix("TCP_") for k, v in self.spec.btf.enum("tcp_state").items()}
        reasons = read_format("skb:kfree_skb").symbols.get("reason", {})
        symbols = KernelSymbols() if self.config.stack else None

        def stack(raw: bytes, size: int) -> str | None:
            if symbols is None or size <= 0:
                return None
            addresses = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, size, 8)]
            frames = [symbols(a) for a in addresses if a]
            # The first frames are the BPF program and the tracepoint's own call.
            while frames and frames[0].startswith(("bpf_prog_", "bpf_trace_run")):
                frames.pop(0)
            return " <- ".join(frames)

        def row(r: tuple[Any, ...]) -> tuple[Any, ...]:
            ts, reason, state, stack_bytes, flags, owner, cpu, sock, lport, rport, raw_stack = r
            return ((ts + offset) / 1e9, owner_of(owner), cpu_of(cpu), sock_of(sock), lport, rport,
                    reasons.get(reason, str(reason)), state_of(states.get(state) if state else None),
                    tcp_flags(flags), stack_of(stack(raw_stack, stack_bytes)))

        return row
