"""tcpscope accept: passive TCP connections, named by the process that accepted them."""

from __future__ import annotations

from typing import Any

from ..ebpf.kernel import kfunc
from ..output import Column, Field, Renderer, flatten
from .common import SOCKET_OPTIONS, SocketTool, identity_cells, port_fields, process_ip_columns

__all__ = ["Accept"]


def _queue(backlog: int | None, limit: int | None) -> str:
    return "-" if backlog is None else f"{backlog}/{limit}"


class Accept(SocketTool):
    name = "accept"
    summary = "passive TCP connections and the process that accepted them (tcpaccept)"
    description = """\
One line per TCP connection accept() returns (tcpaccept), from the stable
tracepoints syscalls:sys_enter/exit_accept and _accept4: they run in the
accepting process, so PID/COMM is the process that accepted the connection (in
a forking server, the child). BL is the listener's accept queue right after the
accept, queued/limit (sk_ack_backlog/sk_max_ack_backlog): 0 means the server
keeps up; "-" for an accept() already waiting when tracing began. A connection
that closed while still in the accept queue (reset by the client, or its
listener closed) is shown too, from sock:inet_sock_set_state, with RESULT "not
accepted" and its listener's owner as PID/COMM (JSON "owner": "listener"): the
process seen calling listen(), or else the first seen accepting from it; "-" if
neither was seen while tracing. Not seen: connections accepted through io_uring
(no syscall) or by 32-bit programs. MPTCP listeners and connections are shown.
Needs Linux 6.2 or newer."""
    options = SOCKET_OPTIONS
    examples = """\
  tcpscope accept                    # every accepted connection and its process
  tcpscope accept -L 80 -T           # on port 80, with wall time
  tcpscope accept -s                 # CSV, with the accept queue's numbers"""
    object_name = "accept"
    full = ("accept() calls' listeners could not be stored (too many threads in accept()): "
            "their queues are unknown")
    record = "accept_event"
    record_fields = ("ts_ns", "backlog", "max_backlog", "queue_known", "accepted", "owner", "cpu", "sock",
                     "lport", "rport")
    tracing = "TCP accepts"
    # It walks from the accepting task to the socket with direct loads.
    requires = (kfunc("bpf_rdonly_cast", "6.2"),)
    skip_programs = ("owner_reads", "forget_sock")  # accept() names the owner; no per-socket state
    unused_maps = ("socks",)
    cells = (
        Field("time", "number", "UNIX time of the accept (or of the close in the queue), in seconds",
              decimals=6),
        *identity_cells(),
        *port_fields(),
        Field("backlog", "number", "connections left in the listener's accept queue after this accept; "
              "null when not accepted, or when the accept() began before tracing", True),
        Field("max_backlog", "number", "the accept queue's limit; null when backlog is", True),
        Field("result", "word", '"accepted", or "not accepted" (closed in the accept queue)'),
    )
    fields = flatten(cells)

    def columns(self) -> list[Column]:
        wide = self.wide
        width = 39 if wide else 16
        columns = [
            *process_ip_columns(wide),
            Column("RADDR", "raddr", width),
            Column("RPORT", "rport", 5),
            Column("LADDR", "laddr", width),
            Column("LPORT", "lport", 5),
        ]
        if self.csv:
            columns += [Column("BACKLOG", "backlog"), Column("MAX_BACKLOG", "max_backlog")]
        else:
            columns.append(Column("BL", "backlog", 9, text=_queue, more=("max_backlog",)))
        return columns + [Column("RESULT", "result")]

    def row_maker(self, render: Renderer) -> Any:
        offset = self.clock_offset_ns
        owner_of, cpu_of, sock_of = self.identity_converters(render)
        backlog_of, limit_of = render.convert("backlog"), render.convert("max_backlog")

        def row(r: tuple[Any, ...]) -> tuple[Any, ...]:
            ts, backlog, limit, queue_known, accepted, owner, cpu, sock, lport, rport = r
            if not queue_known:
                backlog, limit = backlog_of(None), limit_of(None)
            return ((ts + offset) / 1e9, owner_of(owner), cpu_of(cpu), sock_of(sock), lport, rport,
                    backlog, limit, "accepted" if accepted else "not accepted")

        return row
