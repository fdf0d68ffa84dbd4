"""tcpscope probe: flows' sending state (cwnd, ssthresh, RTT, windows), from tcp:tcp_probe."""

from __future__ import annotations

from typing import Any, ClassVar

from ..config import Config
from ..output import Column, Field, Renderer, flatten
from ..plot import require_matplotlib
from .common import (
    SOCKET_OPTIONS,
    SocketTool,
    ca_state_names,
    endpoint,
    identity_cells,
    owner_columns,
    port_fields,
)

__all__ = ["Probe"]

INFINITE_SSTHRESH = 0x7FFFFFFF  # TCP_INFINITE_SSTHRESH: no loss has set it yet
UNLIMITED = (1 << 64) - 1  # ~0UL: no pacing rate


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


class Probe(SocketTool):
    name = "probe"
    summary = "flows' congestion window, ssthresh, RTT and windows per segment (the tcp_probe module)"
    description = """\
A flow's sending state each time a segment arrives, from the stable tracepoint
tcp:tcp_probe (which replaced the tcp_probe module), read from the socket before
the kernel processes the segment: CWND (the congestion window) and SSTHRESH
(the slow-start threshold, "-" until a loss sets it) in segments, SRTT (the
smoothed RTT) and RTTVAR (its mean deviation) in µs, SND_WND (what the peer lets
this end send) and RCV_WND (what this end lets the peer send) and INFLIGHT
(sent, not yet acknowledged) in bytes. -w adds the owner, segments out,
retransmitted and thought lost, the MSS and the pacing and delivery rates
(bytes/s, as tcp_info reports them); JSON and CSV have everything.

A busy host receives many segments a second: -i INTERVAL keeps at most one
sample per flow per interval, decided in the kernel (-i 100ms, -i 1). --plot
FILE draws each flow's cwnd and ssthresh (segments) and srtt (ms) against time,
one panel per flow, at the end (needs matplotlib: pip install 'tcpscope[plot]')."""
    options = (*SOCKET_OPTIONS, "interval", "plot")
    examples = """\
  tcpscope probe -D 443 -i 100ms       # a sample per flow every 100 ms to HTTPS servers
  tcpscope probe -L 5201 --plot cwnd.png -d 30   # an iperf3 server's flows, drawn
  tcpscope probe -j -N /var/run/netns/web        # every sample in a namespace, as JSON lines"""
    object_name = "probe"
    record = "probe_event"
    record_fields = ("ts_ns", "pacing_rate", "snd_cwnd", "ssthresh", "srtt_us", "rttvar_us", "snd_wnd",
                     "rcv_wnd", "in_flight", "packets_out", "retrans_out", "lost_out", "mss",
                     "rate_delivered", "rate_interval_us", "ca_state", "owner", "cpu", "sock", "lport",
                     "rport")
    owner_programs = ("probe_track", "owner_reads", "forget_sock")
    tracing = "flows' sending state"
    skipped = "samples"
    default_time: ClassVar[str] = "relative"
    cells = (
        Field("time", "number", "UNIX time of the sample, in seconds", decimals=6),
        *identity_cells(),
        *port_fields(),
        Field("snd_cwnd", "number", "congestion window, segments"),
        Field("ssthresh", "number", "slow-start threshold, segments, as tcp_probe reports it (the target "
              "while the window is cut, else at least 3/4 of it); null until a loss sets it", True),
        Field("ca_state", "word", 'congestion-control state: "open", "disorder", "cwr", "recovery" or '
              '"loss"'),
        Field("srtt_us", "number", "smoothed round-trip time, µs"),
        Field("rttvar_us", "number", "the RTT's mean deviation, µs (tcp_info's rttvar)"),
        Field("snd_wnd", "number", "bytes the peer lets this end send (its advertised window)"),
        Field("rcv_wnd", "number", "bytes this end lets the peer send"),
        Field("in_flight", "number", "bytes sent and not yet acknowledged"),
        Field("packets_out", "number", "segments sent and not yet acknowledged"),
        Field("retrans_out", "number", "of those, segments retransmitted"),
        Field("lost_out", "number", "of those, segments thought lost"),
        Field("mss", "number", "maximum segment size, bytes"),
        Field("delivery_rate", "number", "bytes per second delivered, the latest sample (as tcp_info); "
              "null before one", True),
        Field("pacing_rate", "number", "bytes per second the kernel paces this flow to; null when "
              "unlimited", True),
    )
    fields = flatten(cells)

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        if config.output.plot:
            require_matplotlib()  # before anything is loaded: one line saying how to get it
        super().__init__(config, *args, **kwargs)

    def constants(self) -> dict[str, Any]:
        values = super().constants()
        if self.config.interval:
            values["interval_ns"] = int(self.config.interval * 1e9)
        return values

    def columns(self) -> list[Column]:
        wide = self.wide
        width = 46 if wide else 21
        columns = owner_columns(wide) if wide else []
        columns += [
            Column("LADDR:LPORT", "laddr", width, text=endpoint, more=("lport",)),
            Column("RADDR:RPORT", "raddr", width, text=endpoint, more=("rport",)),
            Column("CWND", "snd_cwnd", 5, right=True),
            Column("SSTHRESH", "ssthresh", 8, right=True),
            *([Column("CA", "ca_state", 8)] if wide else []),
            Column("SRTT(us)", "srtt_us", 8, right=True),
            Column("RTTVAR", "rttvar_us", 7, right=True),
            Column("SND_WND", "snd_wnd", 8, right=True),
            Column("RCV_WND", "rcv_wnd", 8, right=True),
            Column("INFLIGHT", "in_flight", 8 if wide else 0, right=wide),
        ]
        if wide:
            columns += [
                Column("OUT", "packets_out", 5, right=True),
                Column("RETRANS", "retrans_out", 7, right=True),
                Column("LOST", "lost_out", 5, right=True),
                Column("MSS", "mss", 5, right=True),
                Column("PACING(B/s)", "pacing_rate", 12, right=True, text=_or_dash),
                Column("DELIVERY(B/s)", "delivery_rate", text=_or_dash),
            ]
        return columns

    def row_maker(self, render: Renderer) -> Any:
        offset = self.clock_offset_ns
        owner_of, cpu_of, sock_of = self.identity_converters(render)
        ca_states = ca_state_names(self.spec)
        ssthresh_of, delivery_of, pacing_of = map(render.convert,
                                                  ("ssthresh", "delivery_rate", "pacing_rate"))

        def row(r: tuple[Any, ...]) -> tuple[Any, ...]:
            (ts, pacing, cwnd, ssthresh, srtt, rttvar, snd_wnd, rcv_wnd, in_flight, packets_out, retrans_out,
             lost_out, mss, delivered, interval_us, ca_state, owner, cpu, sock, lport, rport) = r
            delivery = delivered * mss * 1_000_000 // interval_us if delivered and interval_us else None
            return ((ts + offset) / 1e9, owner_of(owner), cpu_of(cpu), sock_of(sock), lport, rport, cwnd,
                    ssthresh_of(None if ssthresh >= INFINITE_SSTHRESH else ssthresh),
                    ca_states.get(ca_state, str(ca_state)), srtt, rttvar, snd_wnd,
                    rcv_wnd, in_flight, packets_out, retrans_out, lost_out, mss, delivery_of(delivery),
                    pacing_of(None if pacing == UNLIMITED else pacing))

        return row
