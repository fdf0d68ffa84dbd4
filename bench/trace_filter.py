"""Throughput cost of 'tcpscope trace' on tcp:tcp_probe with a filter that matches nothing.

tcp:tcp_probe fires for every segment received; the filter runs in the kernel,
so a filter that matches nothing should cost almost nothing. iperf3 runs over
loopback in a private network namespace, alternately with and without the
tracer attached; the figure is the median of per-round throughput ratios.

    python bench/trace_filter.py [--rounds 5] [--seconds 5]

Needs root and iperf3 (scripts/setup.sh --bench). The machine should be idle.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid

PROBE = 't:tcp:tcp_probe (args->sport == 1 && args->dport == 1) "%u", args->data_len'


def throughput(ns: str, seconds: int) -> float:
    out = subprocess.run(["ip", "netns", "exec", ns, "iperf3", "-c", "127.0.0.1", "-t", str(seconds), "-J"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["end"]["sum_received"]["bits_per_second"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=int, default=5)
    a = p.parse_args()
    ns = f"tcpscope-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    server = subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-s"], stdout=subprocess.DEVNULL)
    ratios, base, traced = [], [], []
    try:
        time.sleep(0.5)
        for r in range(a.rounds):
            plain = throughput(ns, a.seconds)
            tracer = subprocess.Popen([sys.executable, "-m", "tcpscope", "trace", PROBE],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert tracer.stderr is not None
            tracer.stderr.readline()  # "Tracing ..."
            with_trace = throughput(ns, a.seconds)
            tracer.send_signal(2)
            out, _ = tracer.communicate(timeout=30)
            assert len(out.splitlines()) == 1, "the filter matched something"  # just the header
            base.append(plain)
            traced.append(with_trace)
            ratios.append(with_trace / plain)
            print(f"round {r + 1}: {plain / 1e9:.1f} Gbit/s untraced, {with_trace / 1e9:.1f} traced",
                  file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["ip", "netns", "delete", ns])
    print(f"\niperf3 over loopback, {a.rounds} rounds of {a.seconds} s, trace on tcp:tcp_probe with a filter "
          "that matches nothing\n")
    print("| mode | median Gbit/s | median ratio to untraced |")
    print("|---|---:|---:|")
    print(f"| untraced | {statistics.median(base) / 1e9:.1f} | 1.00 |")
    print(f"| `tcpscope trace` | {statistics.median(traced) / 1e9:.1f} | {statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
