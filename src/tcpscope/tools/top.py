"""tcpscope top: bytes sent and received per connection or process, per interval (tcptop)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from ..config import Config
from ..ebpf.kernel import tracepoint
from ..output import Cache, Column, Field
from .common import (
    SOCKET_OPTIONS,
    SocketTool,
    csv_columns,
    endpoint,
    flow_fields,
    identity_decoders,
    kilobytes,
)

__all__ = ["Top"]

COOKIE_BYTES = 8  # struct top_key begins with the socket's __u64 cookie


class Top(SocketTool):
    name = "top"
    summary = "bytes sent and received per connection or process in each interval, busiest first (tcptop)"
    description = """\
The busiest TCP connections (tcptop): the bytes each process sent and received
on each connection in every interval (-i, default 1 s), busiest first, from the
stable tracepoints sock:sock_send_length and sock:sock_recv_length (Linux 6.3),
which fire in the sending or receiving process itself, so the PID is exact. The
counts are the payload bytes that send and receive calls returned (a peek
counts nothing), kept in the kernel and read at each interval. --by pid gives a
row per process. On a terminal each report redraws the screen with the rows
that fit; --scroll, CSV and JSON print every row of every report.

Not seen: MPTCP connections (their subflows send from the kernel) and, on
Linux 6.3 and 6.4, sendfile() and splice(), which went around these
tracepoints until 6.5."""
    options = (*SOCKET_OPTIONS, "interval", "iterations", "by", "scroll")
    option_help = {"pid": "only sends and receives of this process ID",
                   "by": "a row per process (pid) instead of per connection"}
    group_keys = ("pid",)
    redraws = True
    examples = """\
  tcpscope top                       # every second, the busiest connections
  tcpscope top -i 5 --by pid         # every 5 s, the busiest processes
  tcpscope top -L 443 -n 10 -j       # HTTPS connections, ten reports as JSON lines"""
    object_name = "top"
    record = None  # no events: the counts are read from the map
    requires = (tracepoint("sock:sock_send_length", "6.3"),)
    skip_programs = ("owner_reads", "forget_sock")
    unused_maps = ("socks", "listener_owners")
    tracing = "TCP sends and receives"
    skipped = "sends or receives"
    full = "sends or receives were not counted: more sockets than the map holds (65536)"
    cells = ()
    fields = ()
    count_map = ("top_key", "top_flow")
    count_cells = (
        Field("time", "number", "UNIX time at the end of the interval, in seconds", decimals=6),
        Field("pid", "number", "process ID of the sender and receiver"),
        Field("comm", "text", "its command name"),
        *(dataclasses.replace(f, nullable=True, doc=f"{f.doc}; null with --by pid") for f in flow_fields()),
        Field("connections", "number", "connections in the row (1; with --by pid, the process's that "
              "moved bytes in the interval)"),
        Field("rx_bytes", "number", "bytes received in the interval"),
        Field("tx_bytes", "number", "bytes sent in the interval"),
    )

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        if config.interval is None:
            config = dataclasses.replace(config, interval=1.0)
        super().__init__(config, *args, **kwargs)
        self._before: dict[tuple[int, int], tuple[int, int]] = {}  # (cookie, pid): rx, tx at the last report

    @property
    def counting(self) -> bool:
        return True

    def row_maker(self, render: Any) -> Any:
        return lambda record: ()  # never called: no events

    def count_columns(self) -> list[Column]:
        if self.csv:
            return csv_columns(self.count_cells)
        width = 46 if self.wide else 21
        flows = [Column("LADDR:LPORT", "laddr", width, text=endpoint, more=("lport",)),
                 Column("RADDR:RPORT", "raddr", width, text=endpoint, more=("rport",))]
        return [
            Column("PID", "pid", 7),
            Column("COMM", "comm", 16 if self.wide else 12, truncate=True),
            *([Column("CONNS", "connections", 5, right=True)] if self.config.by else flows),
            Column("RX_KB", "rx_bytes", 9, right=True, text=kilobytes),
            Column("TX_KB", "tx_bytes", 9, right=True, text=kilobytes),
        ]

    def count_rows(self, source: Any) -> list[tuple[Any, ...]]:
        """The bytes moved since the last report, busiest first. A closed socket's
        entries are final: read once more, then deleted, so that the map holds
        only sockets that are open or closed since the last report."""
        obj = source.obj
        closed = [cookie for cookie, done in obj.map_raw_items("closed") if done[0]]
        finished = set(closed)  # read before the counts: the entries of these are final
        entries = obj.map_raw_items("counts")
        key_layout, flow_layout = (self.spec.layout(s) for s in self.count_map)
        items = [(key_layout.decode(k), flow_layout.decode(v)) for k, v in entries]
        rows = self.counted(items)
        final = []
        for (raw_key, _), (key, _) in zip(entries, items):
            if raw_key[:COOKIE_BYTES] in finished:
                final.append(raw_key)
                del self._before[key.cookie, key.pid]
        obj.map_delete("counts", final)
        obj.map_delete("closed", closed)
        return rows

    def counted(self, items: list[tuple[Any, Any]]) -> list[tuple[Any, ...]]:
        """A row per connection (--by pid: per process) that moved bytes since the
        last report, busiest first."""
        decoders = identity_decoders(self.spec)
        task, sock = Cache(decoders["cpu"]).__getitem__, Cache(decoders["sock"]).__getitem__  # few distinct
        now = time.time()
        rows: dict[Any, list[Any]] = {}
        for key, flow in items:
            rx0, tx0 = self._before.get((key.cookie, key.pid), (0, 0))
            self._before[key.cookie, key.pid] = flow.rx_bytes, flow.tx_bytes
            rx, tx = flow.rx_bytes - rx0, flow.tx_bytes - tx0
            if not rx and not tx:
                continue
            pid, comm = task(flow.task)
            if self.config.by:
                row = rows.setdefault(pid, [now, pid, comm, None, None, None, None, None, None, 0, 0, 0])
            else:
                family, laddr, raddr, netns = sock(flow.sock)
                row = rows.setdefault((key.cookie, key.pid), [now, pid, comm, family, laddr, flow.lport,
                                                              raddr, flow.rport, netns, 0, 0, 0])
            row[9:] = row[9] + 1, row[10] + rx, row[11] + tx
        return sorted((tuple(r) for r in rows.values()), key=lambda r: (-(r[10] + r[11]), r[1]))
