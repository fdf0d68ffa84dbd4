"""tcpscope states: every TCP state change with the time spent in the old state."""

from __future__ import annotations

from typing import Any

from ..output import Column, Field, Renderer, flatten
from .common import (
    SOCKET_OPTIONS,
    SocketTool,
    address_columns,
    identity_cells,
    owner_columns,
    port_fields,
)

__all__ = ["States"]


class States(SocketTool):
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
    options = SOCKET_OPTIONS
    examples = """\
  tcpscope states                    # every state change
  tcpscope states -D 5432 -t         # connections to PostgreSQL, seconds since start
  tcpscope states -j --ring-mb 64    # JSON lines, with room for bursts"""
    object_name = "states"
    record = "state_event"
    record_fields = ("ts_ns", "delta_ns", "skaddr", "oldstate", "newstate", "owner", "cpu", "sock", "lport",
                     "rport")
    tracing = "TCP state changes"
    skipped = "state changes"
    cells = (
        Field("time", "number", "UNIX time of the change, in seconds", decimals=6),
        Field("skaddr", "hex", "kernel address of the socket, in hex (reused after close)"),
        *identity_cells(),
        *port_fields(),
        Field("oldstate", "word", 'state before the change, e.g. "SYN_SENT"'),
        Field("newstate", "word", 'state after the change, e.g. "ESTABLISHED"'),
        Field("duration_ms", "number", "milliseconds spent in oldstate; null when its start was not seen",
              True, decimals=6),
    )
    fields = flatten(cells)

    def columns(self) -> list[Column]:
        wide = self.wide
        skaddr = Column("SKADDR", "skaddr", 16, text=_hex, csv_text=_hex)
        return [skaddr] + owner_columns(wide) + address_columns(wide) + [
            Column("OLDSTATE", "oldstate", 11),
            Column("->", "", 2, table_only=True),
            Column("NEWSTATE", "newstate", 11),
            Column("MS", "duration_ms", text=lambda ms: f"{ms:.3f}"),
        ]

    def row_maker(self, render: Renderer) -> Any:
        offset = self.clock_offset_ns
        owner_of, cpu_of, sock_of = self.identity_converters(render)
        duration = render.convert("duration_ms")
        # enum tcp_state in bpf/common.h: 1 -> "ESTABLISHED", ...; other values as numbers.
        states = _Fallback({v: k.removeprefix("TCP_") for k, v in self.spec.btf.enum("tcp_state").items()})

        def row(r: tuple[Any, ...]) -> tuple[Any, ...]:
            ts, delta, skaddr, old, new, owner, cpu, sock, lport, rport = r
            return ((ts + offset) / 1e9, skaddr, owner_of(owner), cpu_of(cpu), sock_of(sock), lport, rport,
                    states[old], states[new], duration(delta / 1e6 if delta else None))

        return row

    def exit_notes(self, counters: Any) -> list[str]:
        if not counters.preexisting:
            return []
        return [f"{counters.preexisting} sockets existed before tracing started; "
                "their first change's MS is unknown (-)"]


def _hex(value: int) -> str:
    return f"{value:x}"


class _Fallback(dict[int, str]):
    def __missing__(self, key: int) -> str:
        return str(key)
