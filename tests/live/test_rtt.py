"""tcpscope rtt on a link of known delay: its histograms against an independent
observer's samples of the same tracepoint."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections import Counter

from tests.live.conftest import Netns, Nginx, Tracer, reported_skips
from tests.live.test_probe import PING_PONG, RATE_BITS, WIRE_BYTES, Observer, limit_rate

# Messages whose round trip (23.5 ms) sits well inside its log2 bucket, [16384, 32767] µs:
# srtt, climbing to it, gets there after a few samples, and some slowness (an emulated
# guest's) stays in it.
SIZE = 1400


def slot(us: int) -> int:
    """The log2 bucket of a value: [2^n, 2^(n+1)), bucket 0 from 0."""
    return max(0, us.bit_length() - 1)


def test_histograms_of_a_known_delay(netns: Netns) -> None:
    limit_rate(netns)
    # srtt climbs to the link's RTT by 1/8 of the gap per sample: the first samples of
    # each end go to lower buckets, the rest settle in the link's.
    rounds, port = 80, random.randrange(20000, 30000)
    rtt_us = 2 * (WIRE_BYTES - 1000 + SIZE) * 8 / RATE_BITS * 1e6  # the two serializations of a round trip
    observer = Observer(port)
    total = Tracer("rtt", "-j", "-N", netns.path)
    by_port = Tracer("rtt", "-j", "-N", netns.path, "--by", "lport")
    in_ms = Tracer("rtt", "-j", "-N", netns.path, "-m", "-L", str(port))
    script = PING_PONG.format(rounds=rounds, size=SIZE).replace('"127.0.0.1", 0', f'"127.0.0.1", {port}')
    proc = netns.popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert int(proc.stdout.readline()) == port
    assert proc.stdout.readline().strip() == "done" and proc.wait(timeout=30) == 0
    (everything,), _ = total.stop_json()
    per_port, _ = by_port.stop_json()
    (server_ms,), _ = in_ms.stop_json()
    seen = observer.samples()

    # The observer's samples, bucketed: exactly the histograms.
    def histogram(ends: list[tuple[int, int]], ms: bool = False) -> dict[int, int]:
        counts: Counter[int] = Counter()
        for end in ends:
            for (_cwnd, _ssthresh, srtt), n in seen[end].items():
                counts[slot(srtt // 1000 if ms else srtt)] += n
        return dict(counts)

    def buckets(row: dict) -> dict[int, int]:  # type: ignore[type-arg]
        return {slot(b["low"]): b["count"] for b in row["buckets"] if b["count"]}

    assert len(seen) == 2  # both ends of the connection
    server_end = next(end for end in seen if end[0] == port)
    # A sample per segment received in ESTABLISHED: each message, and some ACKs and FINs.
    assert everything["count"] == sum(sum(c.values()) for c in seen.values()) >= 2 * rounds
    assert buckets(everything) == histogram(list(seen))
    assert (everything["raddr"], everything["lport"], everything["unit"]) == (None, None, "us")
    assert sorted(r["lport"] for r in per_port) == sorted(end[0] for end in seen)
    for row in per_port:
        assert buckets(row) == histogram([end for end in seen if end[0] == row["lport"]])
    assert server_ms["unit"] == "ms" and buckets(server_ms) == histogram([server_end], ms=True)
    # Once settled, the RTT is the link's: the most samples are in the bucket holding it.
    counts = buckets(everything)
    assert max(counts, key=counts.__getitem__) == slot(int(rtt_us)), (rtt_us, counts)
    # The buckets go from the lowest used to the highest, each [2^n, 2^(n+1) - 1].
    lows = [b["low"] for b in everything["buckets"]]
    assert lows == [1 << n if n else 0 for n in range(slot(lows[0]), slot(lows[-1]) + 1)]
    assert all(b["high"] == (b["low"] or 1) * 2 - 1 for b in everything["buckets"])


def test_interval_histograms_hold_their_interval(netns: Netns) -> None:
    # -i: each report holds the samples of its interval; -d 2 -i 1 gives two, and the
    # second is empty (nothing happens after the first second): one row in all.
    port = random.randrange(20000, 30000)
    observer = Observer(port)
    tracer = Tracer("rtt", "-j", "-N", netns.path, "-i", "1", "-d", "2")
    netns.run([sys.executable, "-c", PING_PONG.format(rounds=5, size=100).replace(
        '"127.0.0.1", 0', f'"127.0.0.1", {port}')])
    rows, _ = tracer.stop_json(settle=2.5)
    assert len(rows) == 1 and rows[0]["count"] == sum(sum(c.values()) for c in observer.samples().values())


def test_pid_filter_and_what_runs_without_it(netns: Netns) -> None:
    # Two processes, each a ping-pong on its own port; -p keeps the first's samples only.
    ports = random.sample(range(20000, 30000), 2)
    gated = "import sys; sys.stdin.readline()\n" + PING_PONG.format(rounds=10, size=100)
    procs = [netns.popen([sys.executable, "-c", gated.replace('"127.0.0.1", 0', f'"127.0.0.1", {port}')],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE) for port in ports]
    observers = [Observer(port) for port in ports]
    total = Tracer("rtt", "-j", "-N", netns.path)
    one = Tracer("rtt", "-j", "-N", netns.path, "-p", str(procs[0].pid))
    # Histograms show no owners: without -p nothing follows them, only the sampling runs.
    assert total.attached_programs() == ["rtt_sample"] and total.map_sizes()["socks"] == 1
    assert one.attached_programs() == ["forget_sock", "owner_reads", "rtt_sample", "rtt_track"]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
    for proc, port in zip(procs, ports):
        assert proc.stdout is not None
        assert int(proc.stdout.readline()) == port
        assert proc.stdout.readline().strip() == "done" and proc.wait(timeout=30) == 0
    (everything,), _ = total.stop_json()
    (first,), _ = one.stop_json()
    samples = [sum(sum(c.values()) for c in observer.samples().values()) for observer in observers]

    assert first["count"] == samples[0] >= 20
    assert everything["count"] == sum(samples)


def test_a_full_map_is_counted_not_hidden(netns: Netns, nginx: Nginx) -> None:
    # --by lport keys each client socket by its ephemeral port: 6,000 connections are more
    # keys than the map holds (4096). What does not fit is counted and said at exit; with
    # the samples kept, it makes exactly the total that one histogram of everything has.
    total = Tracer("rtt", "-j", "-N", netns.path)
    by_port = Tracer("rtt", "-j", "-N", netns.path, "--by", "lport")
    ab = netns.popen(["ab", "-q", "-s", "120", "-n", "6000", "-c", "8", f"http://127.0.0.1:{nginx.port}/file"],
                     stdout=subprocess.DEVNULL)
    assert ab.wait(timeout=300) == 0
    (everything,), total_err = total.stop_json()
    per_port, err = by_port.stop_json()

    full = re.search(r"WARNING: (\d+) samples were not counted: more flows, addresses or ports than the "
                     r"map holds \(4096\)", err)
    assert full and len(per_port) == 4096, err
    # The kernel may skip a program on a CPU where it already runs: each tool says so.
    skipped = reported_skips(total_err) + reported_skips(err)
    assert abs(sum(r["count"] for r in per_port) + int(full[1]) - everything["count"]) <= skipped
