"""Throughput overhead of the tools that trace inside a connection, side by side.

iperf3 sends one TCP stream over loopback in a private network namespace for a
few seconds per run. Each round runs every mode once, in rotating order, right
next to a baseline run of its own (nothing attached); a mode's ratio is the
median, over rounds, of its throughput divided by that baseline's. The modes
that print every segment also report how many events per second they wrote.

    python bench/stream.py [--rounds 5] [--seconds 3]

Needs root, iperf3 and bpftrace (scripts/setup.sh --bench). The machine should be idle.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from overhead import Attached  # noqa: E402  (the same tracer handling as the connection benchmark)

BPFTRACE_PRINT = ('tracepoint:tcp:tcp_probe { printf("%d %d %d %d %d\\n", args->sport, args->dport, '
                  "args->snd_cwnd, args->ssthresh, args->srtt); }")


TRACE_PROBE = 't:tcp:tcp_probe "%d %d %d", args->snd_cwnd, args->ssthresh, args->srtt'


def modes() -> dict[str, list[str] | None]:
    tcpscope = [sys.executable, "-m", "tcpscope"]
    return {
        "baseline": None,
        "tcpscope probe -i 100ms": [*tcpscope, "probe", "-j", "-i", "100ms"],
        "tcpscope rtt": [*tcpscope, "rtt", "-j"],
        "tcpscope cong": [*tcpscope, "cong", "-j"],
        "tcpscope top": [*tcpscope, "top", "-j"],
        "tcpscope probe (every segment)": [*tcpscope, "probe", "-j"],
        "tcpscope trace on tcp_probe": [*tcpscope, "trace", "-j", TRACE_PROBE],
        "bpftrace printing the same fields": ["bpftrace", "-e", BPFTRACE_PRINT],
    }


def iperf(ns: str, seconds: float) -> float:
    """One stream's throughput, bits per second, as iperf3's receiver measured it."""
    out = subprocess.run(["ip", "netns", "exec", ns, "iperf3", "-c", "127.0.0.1", "-t", str(seconds), "-J"],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--modes", default="all", help="comma-separated subset of the modes")
    a = p.parse_args()
    ns = f"tcpscope-stream-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="tcpscope-stream-"))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    server = subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-s"], stdout=subprocess.DEVNULL)
    all_modes = modes()
    traced = [m for m in all_modes if m != "baseline" and (a.modes == "all" or m in a.modes.split(","))]
    ratios: dict[str, list[float]] = {m: [] for m in traced}
    rates: dict[str, list[float]] = {m: [] for m in all_modes}
    events: dict[str, list[float]] = {m: [] for m in traced}
    try:
        time.sleep(0.5)
        iperf(ns, 1)  # warm up
        for r in range(a.rounds):
            for mode in traced[r % len(traced):] + traced[:r % len(traced)]:
                pair = {}
                for m in (("baseline", mode) if r % 2 == 0 else (mode, "baseline")):
                    cmd = all_modes[m]
                    out = str(work / "out")
                    marker = "Attaching" if m.startswith("bpftrace") else "Tracing "
                    attached = Attached(cmd, marker, out) if cmd else None
                    pair[m] = iperf(ns, a.seconds)
                    rates[m].append(pair[m])
                    if attached:
                        attached.stop()
                        events[m].append(Path(out).read_text().count("\n") / a.seconds)
                ratios[mode].append(pair[mode] / pair["baseline"])
                print(f"round {r + 1} {mode:36s} {pair[mode] / 1e9:7.2f} Gbit/s, "
                      f"ratio {ratios[mode][-1]:.3f}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["ip", "netns", "delete", ns])

    base = statistics.median(rates["baseline"])
    print(f"\n{a.rounds} rounds of iperf3 -t {a.seconds:g} over loopback, "
          f"baseline median {base / 1e9:.2f} Gbit/s\n")
    print("| mode | median Gbit/s | median ratio to its baseline | middle half of ratios "
          "| events written per second |")
    print("|---|---:|---:|---:|---:|")
    for mode in traced:
        q = statistics.quantiles(ratios[mode], n=4) if len(ratios[mode]) > 1 else ratios[mode] * 3
        gbits, ratio = statistics.median(rates[mode]) / 1e9, statistics.median(ratios[mode])
        print(f"| {mode} | {gbits:.2f} | {ratio:.3f} | {q[0]:.3f}-{q[2]:.3f} "
              f"| {statistics.median(events[mode]):,.0f} |")


if __name__ == "__main__":
    main()
