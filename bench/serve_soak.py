"""tcpscope serve under a long connection load, scraped every second as
Prometheus would: how long each scrape takes (the whole HTTP request, and the
part spent reading the kernel's maps) and the exporter's resident memory over
time, which must stay flat.

nginx serves a small file on loopback in a private network namespace and 'ab'
(no keep-alive) opens connections in a loop for the whole run; serve counts
that namespace (-N) with every metric on and a port label.

    python bench/serve_soak.py [--seconds 300]

Needs root, nginx and ab (scripts/setup.sh --bench) and tcpscope[serve].
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import start_nginx, stop_nginx  # noqa: E402


def rss_kib(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())[1])  # type: ignore[index]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=300)
    a = p.parse_args()
    ns, _, nginx = start_nginx("tcpscope-soak")
    serve = subprocess.Popen([sys.executable, "-m", "tcpscope", "serve", "-N", f"/var/run/netns/{ns}",
                              "--listen", "127.0.0.1:0", "--port-labels", "8080"],
                             stderr=subprocess.PIPE, text=True)
    assert serve.stderr is not None
    url = serve.stderr.readline().split()[4].rstrip(".")
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            subprocess.run(["ip", "netns", "exec", ns, "ab", "-q", "-n", "20000", "-c", "8",
                            "http://127.0.0.1:8080/file"], capture_output=True)

    loader = threading.Thread(target=load)
    samples: list[tuple[float, float, float, int]] = []  # (t, request s, read s, RSS KiB)
    try:
        time.sleep(1)
        loader.start()
        start = time.monotonic()
        while time.monotonic() - start < a.seconds:
            began = time.monotonic()
            with urllib.request.urlopen(url, timeout=10) as r:
                body = r.read().decode()
            took = time.monotonic() - began
            read = float(re.search(r"^tcpscope_scrape_read_seconds (\S+)", body, re.M)[1])  # type: ignore[index]
            samples.append((began - start, took, read, rss_kib(serve.pid)))
            time.sleep(max(0.0, 1 - (time.monotonic() - began)))
        connects = sum(float(v) for v in re.findall(r'^tcpscope_connects_total\{[^}]*\} (\S+)', body, re.M))
    finally:
        done.set()
        if loader.is_alive():
            loader.join()
        serve.terminate()
        serve.wait()
        stop_nginx(ns, nginx)

    took = sorted(s[1] * 1e3 for s in samples)
    reads = sorted(s[2] * 1e3 for s in samples)
    minute = [s[3] for s in samples if s[0] < 60]
    last = [s[3] for s in samples if s[0] >= samples[-1][0] - 60]
    print(f"\n{len(samples)} scrapes over {a.seconds} s of ab load; {connects:,.0f} connects counted\n")
    print("| | median | p99 | max |")
    print("|---|---:|---:|---:|")
    print(f"| scrape (HTTP request), ms | {statistics.median(took):.1f} | {took[int(len(took) * 0.99)]:.1f} "
          f"| {took[-1]:.1f} |")
    print(f"| reading the kernel's maps, ms | {statistics.median(reads):.2f} "
          f"| {reads[int(len(reads) * 0.99)]:.2f} "
          f"| {reads[-1]:.2f} |")
    print(f"\nResident memory: first minute {min(minute) / 1024:.1f}-{max(minute) / 1024:.1f} MiB, "
          f"last minute {min(last) / 1024:.1f}-{max(last) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
