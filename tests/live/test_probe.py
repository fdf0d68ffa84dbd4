"""tcpscope probe against real transfers: an independent observer of the same
tracepoint, a delay the test computes, the kernel-side interval, the plot."""

from __future__ import annotations

import importlib.util
import random
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.live.conftest import Netns, Server, TracepointObserver, Tracer, run_client

INFINITE_SSTHRESH = 0x7FFFFFFF
# Drop a share of the server's data packets on the way in: the sender's cwnd and
# ssthresh move (losses, recoveries), which is what the samples are about.
LOSS = ("add table inet loss; add chain inet loss input { type filter hook input priority 0; }; "
        "add rule inet loss input tcp sport {port} meta length > 200 numgen random mod 10 < 1 drop")
# One message at a time, each answered before the next: each round trip is one
# segment each way, so the RTT is what the link's rate makes of two segments.
PING_PONG = """
import socket, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
print(srv.getsockname()[1], flush=True)
c = socket.create_connection(srv.getsockname()); s, _ = srv.accept()
for end in (c, s):
    end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def exactly(conn, n):
    got = b""
    while len(got) < n:
        got += conn.recv(n - len(got))
for _ in range({rounds}):
    c.sendall(b"q" * {size}); exactly(s, {size})
    s.sendall(b"a" * {size}); exactly(c, {size})
c.close(); s.close()
print("done", flush=True)
"""
RATE_BITS = 1_000_000  # the link's rate (htb on lo)
WIRE_BYTES = 1000 + 52 + 14  # a message, its TCP/IP headers (with timestamps) and Ethernet's


def limit_rate(netns: Netns) -> None:
    """lo at RATE_BITS per second, 1500-byte packets: every packet waits its serialization time."""
    netns.run(["ip", "link", "set", "lo", "mtu", "1500"])
    netns.run(["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10"])
    netns.run(["tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate",
               str(RATE_BITS), "ceil", str(RATE_BITS)])


def flows(rows: list[dict[str, Any]]) -> dict[tuple[int, int], Counter[tuple[int, int, int]]]:
    """(lport, rport) -> the (cwnd, ssthresh, srtt µs) samples, counted."""
    out: dict[tuple[int, int], Counter[tuple[int, int, int]]] = {}
    for r in rows:
        ssthresh = INFINITE_SSTHRESH if r["ssthresh"] is None else r["ssthresh"]
        out.setdefault((r["lport"], r["rport"]), Counter())[r["snd_cwnd"], ssthresh, r["srtt_us"]] += 1
    return out


class Observer(TracepointObserver):
    """tcp:tcp_probe's samples of either end of a port's connections."""

    def __init__(self, port: int) -> None:
        super().__init__("tcp:tcp_probe", f"args->sport == {port} || args->dport == {port}",
                         ("sport", "dport", "snd_cwnd", "ssthresh", "srtt"))

    def samples(self) -> dict[tuple[int, int], Counter[tuple[int, int, int]]]:
        out: dict[tuple[int, int], Counter[tuple[int, int, int]]] = {}
        for sport, dport, cwnd, ssthresh, srtt in self.records():
            out.setdefault((sport, dport), Counter())[cwnd, ssthresh, srtt] += 1
        return out


def test_samples_equal_an_independent_observers(netns: Netns) -> None:
    netns.run(["ip", "link", "set", "lo", "mtu", "1500"])  # an ACK every two segments: many samples
    size, port = 4_000_000, random.randrange(20000, 30000)  # the namespace is new: the port is free
    # Tracing first: the server's socket carries its owner from listen() on.
    observer = Observer(port)
    probe = Tracer("probe", "-j", "-N", netns.path, "-L", str(port))
    srv = Server(netns, expect=100, reply=size, port=port)
    netns.run(["nft", LOSS.replace("{port}", str(port))])
    before = netns.counters()
    run_client(netns, port=srv.port, send=100, expect=size)
    srv.wait()
    after = netns.counters()
    rows, err = probe.stop_json()
    seen = observer.samples()
    ours = flows(rows)
    # -L: the server's end only; the observer saw both ends.
    assert len(ours) == 1 and "lost" not in err
    (flow, samples), = ours.items()
    assert flow[0] == srv.port and seen[flow] == samples
    assert sum(samples.values()) > 20
    # The losses moved the sender's state: after the first recovery, ssthresh is set.
    assert after["TcpRetransSegs"] > before["TcpRetransSegs"]
    assert any(ssthresh != INFINITE_SSTHRESH for _cwnd, ssthresh, _srtt in samples)
    for r in rows:
        assert (r["laddr"], r["raddr"], r["netns"]) == ("127.0.0.1", "127.0.0.1", netns.inode)
        assert r["pid"] == srv.pid
        assert r["mss"] > 0 and r["snd_cwnd"] > 0 and 0 <= r["in_flight"] <= r["packets_out"] * r["mss"]


def test_srtt_of_a_known_delay_and_the_interval(netns: Netns, tmp_path: Path) -> None:
    limit_rate(netns)
    rounds, size = 40, 1000
    # Each round trip: the message's serialization, then the answer's (the ACK rides on it).
    rtt_us = 2 * WIRE_BYTES * 8 / RATE_BITS * 1e6
    plot = tmp_path / "flows.png"
    plotting = importlib.util.find_spec("matplotlib") is not None
    every = Tracer("probe", "-j", "-N", netns.path)
    sampled = Tracer("probe", "-j", "-N", netns.path, "-i", "100ms")
    drawn = Tracer("probe", "-s", "-N", netns.path, "--plot", str(plot)) if plotting else None
    proc = netns.popen([sys.executable, "-c", PING_PONG.format(rounds=rounds, size=size)],
                       stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    assert proc.stdout.readline().strip() == "done" and proc.wait(timeout=30) == 0
    rows, _ = every.stop_json()
    few, _ = sampled.stop_json()

    ends = flows(rows)  # the connection's two ends, each sampled as it receives
    assert len(ends) == 2, ends
    (a, b), (c, d) = sorted(ends)
    assert (a, b) == (d, c) and port in (a, c)
    # Once a few round trips are in, the smoothed RTT sits within its bounds: the two
    # serializations, less the credit htb's bucket gathers while the link is idle between
    # rounds (a few ms where the programs run slowly, under emulation), and at most with a
    # third packet's (a delayed pure ACK) in the queue.
    for end in ends:
        late = [r["srtt_us"] for r in rows if (r["lport"], r["rport"]) == end][-10:]
        assert all(0.8 * rtt_us <= srtt <= 1.6 * rtt_us for srtt in late), (rtt_us, late)
    # -i: at most one sample per flow per 100 ms, chosen in the kernel, and the samples
    # are samples of the same flows.
    assert 0 < len(few) < len(rows)
    for end in ends:
        times = [r["time"] for r in few if (r["lport"], r["rport"]) == end]
        assert times and all(b - a >= 0.1 for a, b in zip(times, times[1:])), times
    if drawn is None:  # the kernel matrix's guests have no matplotlib: one line saying how to get it
        proc = subprocess.run([sys.executable, "-m", "tcpscope", "probe", "--plot", str(plot)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 4 and proc.stdout == "" and proc.stderr.count("\n") == 1
        assert "pip install 'tcpscope[plot]'" in proc.stderr
        return
    _, err, rc = drawn.stop()
    assert rc == 0 and "Drew 2 flows to " in err, err
    header = plot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert (width, height) == (1000, 640)  # 10 x 3.2 inches per flow at 100 dpi, two flows
