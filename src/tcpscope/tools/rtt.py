"""tcpscope rtt: histograms of flows' smoothed RTT, kept in the kernel (tcprtt)."""

from __future__ import annotations

import struct
from typing import Any

from ..net import Addresses
from ..output import Column, Field
from .common import SOCKET_OPTIONS, SocketTool, csv_columns

__all__ = ["Rtt"]

SLOTS = 32  # RTT_SLOTS in bpf/rtt.h
WIDTH = 40  # of the distribution's bar, as bcc's


def bucket_bounds(slot: int) -> tuple[int, int]:
    """The values slot holds: [2^slot, 2^(slot+1) - 1], slot 0 from 0."""
    return (0 if slot == 0 else 1 << slot), (1 << (slot + 1)) - 1


def histogram_text(unit: str, buckets: list[dict[str, int]]) -> str:
    """bcc's log2 histogram: a line per bucket from the first to the last used one."""
    label = "usecs" if unit == "us" else "msecs"
    top = max((b["count"] for b in buckets), default=0)
    lines = [f"{label:>24}: count     distribution"]
    for b in buckets:
        stars = round(b["count"] * WIDTH / top) if top else 0
        lines.append(f"{b['low']:>10} -> {b['high']:<10}: {b['count']:<9} |{'*' * stars:<{WIDTH}}|")
    return "\n".join(lines)


class Rtt(SocketTool):
    name = "rtt"
    summary = "histograms of flows' smoothed RTT, in total or per remote address or local port (tcprtt)"
    description = """\
Histograms of TCP flows' smoothed round-trip time (tcprtt), from the stable
tracepoint tcp:tcp_probe: each segment a flow receives adds the flow's srtt (as
tcp_info and ss -i report it) to a log2 histogram kept in the kernel, in µs
(-m: ms). One histogram in total, or --by raddr (per remote address) or --by
lport (per local port). Printed at exit, and with -i at the end of every
interval, each then holding that interval's samples only. -j gives the
buckets as numbers. Filters run in the kernel."""
    options = (*SOCKET_OPTIONS, "interval", "iterations", "by", "milliseconds")
    group_keys = ("raddr", "lport")
    examples = """\
  tcpscope rtt -i 5                  # every 5 s, the RTT histogram of those 5 s
  tcpscope rtt --by raddr -D 443 -m  # per HTTPS server, in ms
  tcpscope rtt --by lport -d 60 -j   # a minute per local port, as JSON lines"""
    object_name = "rtt"
    record = None  # no events: the histograms are read from the map
    owner_programs = ("rtt_track", "owner_reads", "forget_sock")  # for -p only
    tracing = "TCP round-trip times"
    skipped = "samples"
    full = "samples were not counted: more flows, addresses or ports than the map holds (4096)"
    cells = ()
    fields = ()
    count_map = ("rtt_key", "rtt_hist")
    count_cells = (
        Field("raddr", "word", "the remote address (--by raddr); null otherwise", True),
        Field("lport", "number", "the local port (--by lport); null otherwise", True),
        Field("unit", "word", '"us" or "ms" (-m)'),
        Field("count", "number", "samples: segments received"),
        Field("avg", "number", "their mean, in the unit", decimals=3),
        Field("buckets", "json", 'from the lowest to the highest used: {"low", "high", "count"}, bounds '
              "inclusive, in the unit"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._before: dict[tuple[bytes, int, int], tuple[int, ...]] = {}  # -i: the counts at the last report

    @property
    def counting(self) -> bool:
        return True

    def constants(self) -> dict[str, Any]:
        return {**super().constants(), "by_raddr": int(self.config.by == "raddr"),
                "by_lport": int(self.config.by == "lport"), "in_ms": int(self.config.milliseconds)}

    def row_maker(self, render: Any) -> Any:
        return lambda record: ()  # never called: no events

    def count_columns(self) -> list[Column]:
        if self.csv:
            return csv_columns(self.count_cells)
        return [Column("", "buckets", text=self._histogram, more=("raddr", "lport", "unit", "count", "avg"))]

    def _histogram(self, buckets: list[dict[str, int]], raddr: str | None, lport: int | None, unit: str,
                   count: int, avg: float) -> str:
        title = (f"Remote address = {raddr}\n" if raddr is not None
                 else f"Local port = {lport}\n" if lport is not None else "")
        return f"{title}{histogram_text(unit, buckets)}\navg = {avg:.3f} {unit}, count = {count}\n"

    def counted(self, items: list[tuple[Any, Any]]) -> list[tuple[Any, ...]]:
        """A row per histogram, the most samples first; with -i, the samples since the last report."""
        address = Addresses()
        unit = "ms" if self.config.milliseconds else "us"
        rows = []
        for key, hist in items:
            now = (*struct.unpack(f"<{SLOTS}Q", hist.slots), hist.count, hist.sum_us)
            ident = (key.raddr, key.family, key.lport)
            before = self._before.get(ident, (0,) * len(now))
            if self.config.interval:
                self._before[ident] = now
            *slots, count, sum_us = (a - b for a, b in zip(now, before))
            if not count:
                continue
            used = [i for i, n in enumerate(slots) if n]
            buckets = [dict(zip(("low", "high"), bucket_bounds(i)), count=slots[i])
                       for i in range(used[0], used[-1] + 1)]
            raddr = address[key.family, key.raddr] if self.config.by == "raddr" else None
            lport = key.lport if self.config.by == "lport" else None
            avg = sum_us / count / (1000 if unit == "ms" else 1)
            rows.append((raddr, lport, unit, count, avg, buckets))
        rows.sort(key=lambda r: -r[3])
        return rows
