"""tcpscope serve: TCP metrics for Prometheus, counted in the kernel and read at each scrape."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import Any

from .. import __version__
from ..ebpf.kernel import release, tracepoint_field
from ..ebpf.tracefs import read_format
from ..errors import MissingFeature
from ..net import port_bitmap
from ..output import Field
from .common import SocketTool

__all__ = ["Serve", "require_prometheus_client"]

OUTCOMES = ("established", "refused", "timed_out", "aborted", "failed")  # enum outcome's order
NOT_SPECIFIED = "NOT_SPECIFIED"  # the kernel's name for reason 0, in both enums
HIST_SLOTS = 40  # in bpf/serve.h
# Histogram bucket bounds, in seconds: slot N holds [2^N, 2^(N+1)) µs.
BOUNDS = tuple((1 << (n + 1)) / 1e6 for n in range(HIST_SLOTS))


def require_prometheus_client() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise MissingFeature("serve needs prometheus_client: pip install 'tcpscope[serve]'") from None


class Serve(SocketTool):
    name = "serve"
    summary = "a Prometheus exporter: TCP connects, sessions, bytes, retransmits, resets, drops, RTT"
    description = """\
Serve TCP metrics on /metrics for Prometheus to scrape (the Prometheus text
format, or OpenMetrics when the scraper asks for it): connects by outcome and
their latency, accepts, closed sessions with their duration and payload bytes,
retransmitted segments, SYN-ACK retransmits, resets sent and received and drops
by the kernel's reason, and the RTT of every segment received, from the stable
tracepoints sock:inet_sock_set_state, tcp:tcp_retransmit_skb,
tcp:tcp_retransmit_synack, tcp:tcp_send_reset, tcp:tcp_receive_reset,
skb:kfree_skb and tcp:tcp_probe. Everything is
counted in the kernel, in counters and log2 histograms, and read when
Prometheus scrapes: nothing per packet or connection reaches user space. Only
connections seen from their start count (those open when serve starts do not).
No label names a connection or an address: --port-labels gives listed ports a
port label (a connection's local port if listed, else its remote port if
listed, else "other"). It listens on 127.0.0.1:10135 unless told --listen; TLS
and basic auth come from --web-config, in the format of Prometheus' exporters.
Needs prometheus_client (pip install 'tcpscope[serve]'), and PyYAML and bcrypt
for --web-config."""
    options = ("localport", "remoteport", "ipv4", "ipv6", "netns", "duration", "verbose", "listen",
               "web_config", "port_labels")
    option_help = {"duration": "stop serving after SECONDS"}
    examples = """\
  tcpscope serve                                  # metrics on http://127.0.0.1:10135/metrics
  tcpscope serve --listen :10135 --port-labels 80,443
  tcpscope serve --listen 10.0.0.5:10135 --web-config /etc/tcpscope/web.yml"""
    object_name = "serve"
    full = "observations were not counted: more ports (--port-labels) than the metric maps hold"
    record = None  # no events: the maps are read at each scrape
    requires = (tracepoint_field("skb:kfree_skb", "reason", "5.17"),)
    skip_programs = ("owner_reads",)
    unused_maps = ("listener_owners",)
    tracing = None
    serves = True
    cells = ()
    fields = ()
    count_cells = (
        Field("name", "word", "the sample's name, as /metrics shows it (e.g. tcpscope_connects_total)"),
        Field("labels", "json", "its labels, an object"),
        Field("value", "number", "its value"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from ..exporter import WebConfig, load_web_config

        super().__init__(*args, **kwargs)
        require_prometheus_client()
        self.web = load_web_config(self.config.web_config) if self.config.web_config else WebConfig()
        self._reset_reasons = read_format("tcp:tcp_send_reset").symbols.get("reason", {})
        self._drop_reasons = read_format("skb:kfree_skb").symbols.get("reason", {})
        self.last_read_seconds = 0.0

    @property
    def counting(self) -> bool:
        return True

    def constants(self) -> dict[str, Any]:
        values = super().constants()
        if self.config.port_labels:
            values["port_labels_on"] = 1
            values["label_ports"] = port_bitmap(self.config.port_labels)
        return values

    def row_maker(self, render: Any) -> Any:
        return lambda record: ()  # never called: no events

    def count_rows(self, source: Any) -> list[tuple[Any, ...]]:
        """Every sample /metrics would show now (the library's counts())."""
        return [(s.name, s.labels, s.value) for family in self.families(source) for s in family.samples]

    def families(self, source: Any) -> Iterator[Any]:
        """The metric families, read from the kernel's maps now (prometheus_client's types)."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        started = time.perf_counter()
        obj = source.obj
        metric = self.spec.btf.enum("metric")
        key_layout = self.spec.layout("metric_key")
        counts: dict[tuple[int, int, int], int] = {}
        for raw_key, raw_value in obj.map_raw_items("metrics"):
            key = key_layout.decode(raw_key)
            counts[key.metric, key.label, key.port] = struct.unpack("<Q", raw_value)[0]
        hist_layout, hist_key_layout = self.spec.layout("histogram"), self.spec.layout("histogram_key")
        histograms = {}
        for raw_key, raw_value in obj.map_raw_items("histograms"):
            key, hist = hist_key_layout.decode(raw_key), hist_layout.decode(raw_value)
            histograms[key.histogram, key.port] = hist
        labeled = self.config.port_labels
        ports = [str(p) for p in sorted(labeled)] + ["other"] if labeled else [""]
        port_labels = ["port"] if self.config.port_labels else []

        def port_name(port: int) -> str:
            return (str(port) if port else "other") if self.config.port_labels else ""

        def series(name: str) -> dict[tuple[int, str], int]:
            """A counter's values by (label, port name)."""
            wanted = metric[f"METRIC_{name}"]
            found: dict[tuple[int, str], int] = {}
            for (m, label, port), value in counts.items():
                if m == wanted:
                    found[label, port_name(port)] = found.get((label, port_name(port)), 0) + value
            return found

        def counter(name: str, doc: str, label: str | None = None) -> Any:
            return CounterMetricFamily(name, doc, labels=([label] if label else []) + port_labels)

        def values(*labels: str, port: str) -> list[str]:
            return [*labels, port] if port_labels else list(labels)

        connects = counter("tcpscope_connects", "TCP connects by outcome", "outcome")
        by_outcome = series("CONNECTS")
        for port in ports:
            for i, outcome in enumerate(OUTCOMES):
                connects.add_metric(values(outcome, port=port), by_outcome.get((i, port), 0))
        yield connects
        for name, doc, key in (
            ("tcpscope_accepts", "TCP connections accepted (a listener's child established)", "ACCEPTS"),
            ("tcpscope_sessions_closed", "TCP sessions closed (established, then closed)", "SESSIONS_CLOSED"),
            ("tcpscope_retransmitted_segments", "TCP segments retransmitted (sent)",
             "RETRANSMITTED_SEGMENTS"),
            ("tcpscope_synack_retransmits", "SYN-ACKs retransmitted by listeners", "SYNACK_RETRANSMITS"),
        ):
            family, found = counter(name, doc), series(key)
            for port in ports:
                family.add_metric(values(port=port), found.get((0, port), 0))
            yield family
        sent_bytes, received_bytes = series("SESSION_TX_BYTES"), series("SESSION_RX_BYTES")
        session_bytes = counter("tcpscope_session_bytes", "payload bytes of closed TCP sessions, as life "
                                "reports them", "direction")
        for port in ports:
            session_bytes.add_metric(values("tx", port=port), sent_bytes.get((0, port), 0))
            session_bytes.add_metric(values("rx", port=port), received_bytes.get((0, port), 0))
        yield session_bytes
        resets = CounterMetricFamily("tcpscope_resets", "TCP RSTs sent and received, by the kernel's reason",
                                     labels=["direction", "reason", *port_labels])
        for direction, key, names in (("sent", "RESETS_SENT", self._reset_reasons),
                                      ("received", "RESETS_RECEIVED", {})):
            for (reason, port), value in sorted(series(key).items()):
                resets.add_metric(values(direction, names.get(reason, NOT_SPECIFIED if not reason
                                                              else str(reason)), port=port), value)
        yield resets
        drops = counter("tcpscope_drops", "TCP packets the kernel dropped, by its reason", "reason")
        for (reason, port), value in sorted(series("DROPS").items()):
            drops.add_metric(values(self._drop_reasons.get(reason, str(reason)), port=port), value)
        yield drops
        histogram_id = self.spec.btf.enum("histogram_id")
        for name, doc, key in (
            ("tcpscope_connect_latency_seconds", "time from connect() to its outcome", "CONNECT_LATENCY"),
            ("tcpscope_session_duration_seconds", "lifespan of closed TCP sessions, from connect() or "
             "the SYN", "SESSION_DURATION"),
            ("tcpscope_rtt_seconds", "smoothed RTT of TCP flows, sampled at every segment received", "RTT"),
        ):
            family = HistogramMetricFamily(name, doc, labels=port_labels)
            wanted = histogram_id[f"HISTOGRAM_{key}"]
            for port in ports:
                held = [h for (which, p), h in histograms.items() if which == wanted and port_name(p) == port]
                slots = [sum(s) for s in zip(*(struct.unpack(f"<{HIST_SLOTS}Q", h.slots) for h in held))] \
                    or [0] * HIST_SLOTS
                count, total_ns = sum(h.count for h in held), sum(h.sum_ns for h in held)
                cumulative, buckets = 0, []
                for bound, n in zip(BOUNDS, slots):
                    cumulative += n
                    buckets.append((repr(bound), cumulative))
                buckets.append(("+Inf", count))
                family.add_metric(values(port=port), buckets, total_ns / 1e9)
            yield family
        counters = source.counters()
        lost = counters.map_full + counters.storage_failed + obj.recursion_misses()
        yield CounterMetricFamily("tcpscope_events_lost", "events the kernel could not count (a full map, "
                                  "or a program it skipped)", value=lost)
        info = GaugeMetricFamily("tcpscope_build_info", "tcpscope's version and the running kernel",
                                 labels=["version", "kernel"])
        info.add_metric([__version__, release()], 1)
        yield info
        self.last_read_seconds = time.perf_counter() - started
        yield GaugeMetricFamily("tcpscope_scrape_read_seconds", "time this scrape took to read the kernel's "
                                "maps", value=self.last_read_seconds)
