"""Connection-rate overhead of tracing, measured side by side in one run.

nginx serves a small file on loopback in a private network namespace and
'ab' (no keep-alive) opens one TCP connection per request. Each round runs
every mode once, in rotating order: each tcpscope tool writing every event as
JSON to a file, tcpdump writing every packet to /dev/null, and bpftrace
printing every inet_sock_set_state event (or doing nothing with it). Each
mode runs right next to a baseline run of its own (nothing attached), before
or after it in turn; its ratio is the median, over rounds, of its rate divided
by that baseline's (the machine's speed drifts, even within a round). A second
baseline, measured as if it were a tracer, shows how far the ratios wander
with nothing attached at all.

Also reported: exec-to-attached time and peak RSS of the tcpscope tools,
the events they lost (must be 0) and, from one more run each, what each
tool costs per connection exactly, free of the rate's noise: its kernel
programs' run time (kernel.bpf_stats_enabled) and its process's CPU time, as
a share of what an untraced connection costs all CPUs together and of what it
costs the busiest CPU alone (from the baseline runs): on loopback most of a
connection's kernel work lands on one CPU, which then bounds the rate.

    python bench/overhead.py [--rounds 5] [--requests 20000] [--concurrency 8]

Needs root, nginx, ab, tcpdump and bpftrace (scripts/setup.sh --bench).
The machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
BPFTRACE_PRINT = ('tracepoint:sock:inet_sock_set_state { printf("%d %s %d %d %d %d\\n", pid, comm, '
                  'args->sport, args->dport, args->oldstate, args->newstate); }')
BPFTRACE_NOOP = "tracepoint:sock:inet_sock_set_state { }"
NGINX_CONF = """\
user root;
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 0;
    server {{ listen 127.0.0.1:8080 backlog=4096; root {dir}/www; }}
}}
"""


def tracer_command(mode: str, ns: str, out: str) -> list[str] | None:
    tcpscope = [sys.executable, "-m", "tcpscope"]
    return {
        "baseline": None,
        "baseline again (control)": None,
        "tcpscope life": [*tcpscope, "life", "-j"],
        "tcpscope states": [*tcpscope, "states", "-j"],
        "tcpscope states (library)": [sys.executable, str(HERE / "library_states.py")],
        "tcpscope retrans": [*tcpscope, "retrans", "-j"],
        "tcpscope synack": [*tcpscope, "synack", "-j"],
        "tcpscope connect": [*tcpscope, "connect", "-j"],
        "tcpscope connect -c": [*tcpscope, "connect", "-c", "-j"],
        "tcpscope accept": [*tcpscope, "accept", "-j"],
        "tcpscope reset": [*tcpscope, "reset", "-j"],
        "tcpscope retrans --no-owner": [*tcpscope, "retrans", "-j", "--no-owner"],
        "tcpscope reset --no-owner": [*tcpscope, "reset", "-j", "--no-owner"],
        "tcpscope drop": [*tcpscope, "drop", "-j"],
        "tcpscope probe -i 100ms": [*tcpscope, "probe", "-j", "-i", "100ms"],
        "tcpscope rtt": [*tcpscope, "rtt", "-j"],
        "tcpscope cong": [*tcpscope, "cong", "-j"],
        "tcpscope top": [*tcpscope, "top", "-j"],
        "tcpscope top --by pid": [*tcpscope, "top", "-j", "--by", "pid"],
        "tcpscope serve": [*tcpscope, "serve", "--listen", "127.0.0.1:0"],
        "tcpdump": ["ip", "netns", "exec", ns, "tcpdump", "-q", "-i", "lo", "-w", "/dev/null"],
        # bpftrace may warn that it cannot raise RLIMIT_MEMLOCK; kernels since 5.11 do not need it.
        "bpftrace (print every event)": ["bpftrace", "-e", BPFTRACE_PRINT],
        "bpftrace (empty program)": ["bpftrace", "-e", BPFTRACE_NOOP],
    }[mode]


def ready_marker(mode: str) -> str:
    return {"tcpdump": "listening on", "baseline": "", "tcpscope serve": "Serving"}.get(
        mode, "Tracing " if mode.startswith("tcpscope") else "Attaching"
    )


class Attached:
    """A tracer running for one measurement."""

    def __init__(self, cmd: list[str], marker: str, out: str) -> None:
        self.out = open(out, "w")
        self.err = open(out + ".err", "w+")
        start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=self.err, text=True)
        while marker not in Path(out + ".err").read_text() + Path(out).read_text():
            if self.proc.poll() is not None or time.monotonic() - start > 30:
                raise SystemExit(f"{cmd[0]} did not start: {Path(out + '.err').read_text()}")
            time.sleep(0.005)
        self.startup = time.monotonic() - start
        time.sleep(0.5)  # let it settle before load

    def stop(self) -> tuple[int, str]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        peak_kib = int(re.search(r"VmHWM:\s+(\d+)", status)[1])  # type: ignore[index]
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # bpftrace sometimes hangs on exit
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        self.err.seek(0)
        return peak_kib, self.err.read()


def handed_over(mode: str, out: Path) -> int:
    """The events a tcpscope mode handed over in a run: JSON lines written, or the
    library's count (its only line)."""
    text = out.read_text()
    return int(text) if mode.endswith("(library)") else text.count("\n")


def bpf_programs() -> dict[int, tuple[int, int]]:
    """Every loaded BPF program: id -> (run count, run time in ns)."""
    progs = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True,
                                      check=True).stdout)
    return {p["id"]: (p.get("run_cnt", 0), p.get("run_time_ns", 0)) for p in progs}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cost(mode: str, ns: str, out: str, requests: int, concurrency: int) -> tuple[float, float, float]:
    """What one tcpscope mode costs per connection, exactly: how often its kernel
    programs ran, their run time (kernel.bpf_stats_enabled) and its own process's
    CPU time, in microseconds."""
    before = set(bpf_programs())
    subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=1"], check=True)
    try:
        attached = Attached(tracer_command(mode, ns, out) or [], ready_marker(mode), out)
        ours = {i: v for i, v in bpf_programs().items() if i not in before}
        cpu = cpu_seconds(attached.proc.pid)
        ab_rate(ns, requests, concurrency)
        time.sleep(0.3)  # the reader's last poll
        cpu = cpu_seconds(attached.proc.pid) - cpu
        after = bpf_programs()
        attached.stop()
    finally:
        subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=0"], check=True)
    runs = sum(after[i][0] - n for i, (n, _t) in ours.items())
    kernel_ns = sum(after[i][1] - t for i, (_n, t) in ours.items())
    return runs / requests, kernel_ns / 1e3 / requests, cpu * 1e6 / requests


def busy_seconds() -> list[float]:
    """Each CPU's time not idle so far (/proc/stat)."""
    busy = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            ticks = [int(v) for v in line.split()[1:]]
            # user nice system idle iowait irq softirq steal: busy is neither idle nor stolen
            busy.append((sum(ticks[:8]) - ticks[3] - ticks[4] - ticks[7]) / os.sysconf("SC_CLK_TCK"))
    return busy


def ab_rate(ns: str, requests: int, concurrency: int) -> float:
    proc = subprocess.run(["ip", "netns", "exec", ns, "ab", "-q", "-n", str(requests), "-c", str(concurrency),
                           "http://127.0.0.1:8080/file"], capture_output=True, text=True, check=True)
    return float(re.search(r"Requests per second:\s+([\d.]+)", proc.stdout)[1])  # type: ignore[index]


def start_nginx(prefix: str) -> tuple[str, Path, subprocess.Popen[bytes]]:
    """nginx serving a 512-byte file on 127.0.0.1:8080 in a new network namespace:
    the namespace's name, a scratch directory, the server."""
    ns = f"{prefix}-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    (work / "www").mkdir()
    (work / "www" / "file").write_bytes(b"x" * 512)
    (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work))
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1",
                    "net.ipv4.ip_local_port_range=1024 65000"], check=True)
    return ns, work, subprocess.Popen(["ip", "netns", "exec", ns, "nginx", "-c", str(work / "nginx.conf")])


def stop_nginx(ns: str, nginx: subprocess.Popen[bytes]) -> None:
    nginx.terminate()
    nginx.wait()
    subprocess.run(["ip", "netns", "delete", ns])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--modes", default="all", help="comma-separated subset of the modes")
    a = p.parse_args()
    modes = ["baseline", "baseline again (control)", "tcpscope life", "tcpscope states",
             "tcpscope states (library)", "tcpscope retrans",
             "tcpscope retrans --no-owner", "tcpscope synack", "tcpscope connect", "tcpscope connect -c",
             "tcpscope accept", "tcpscope reset", "tcpscope reset --no-owner", "tcpscope drop",
             "tcpscope probe -i 100ms", "tcpscope rtt", "tcpscope cong", "tcpscope top",
             "tcpscope top --by pid", "tcpscope serve", "tcpdump", "bpftrace (print every event)",
             "bpftrace (empty program)"]
    if a.modes != "all":
        modes = ["baseline"] + [m for m in modes if m in a.modes.split(",") and m != "baseline"]

    ns, work, nginx = start_nginx("tcpscope-bench")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    ratios: dict[str, list[float]] = {m: [] for m in modes}
    startup: dict[str, list[float]] = {m: [] for m in modes}
    busiest: list[float] = []  # µs the busiest CPU spent per connection, in baseline runs
    rss: dict[str, int] = {}
    lost: dict[str, int] = {}
    events: dict[str, list[int]] = {m: [] for m in modes}  # events handed over, per run
    traced = modes[1:]
    try:
        time.sleep(0.5)
        ab_rate(ns, 2000, a.concurrency)  # warm up
        for r in range(a.rounds):
            for mode in traced[r % len(traced):] + traced[:r % len(traced)]:
                # Each mode runs next to a baseline of its own, first or second in turn.
                pair = {}
                for m in (("baseline", mode) if r % 2 == 0 else (mode, "baseline")):
                    cmd = tracer_command(m, ns, str(work / "out"))
                    attached = Attached(cmd, ready_marker(m), str(work / "out")) if cmd else None
                    before = busy_seconds()
                    pair[m] = ab_rate(ns, a.requests, a.concurrency)
                    if m == "baseline":
                        busiest.append(max(map(float.__sub__, busy_seconds(), before)) * 1e6 / a.requests)
                    rates[m].append(pair[m])
                    if attached:
                        startup[m].append(attached.startup)
                        peak, err = attached.stop()
                        rss[m] = max(rss.get(m, 0), peak)
                        found = re.search(r"(\d+) events were lost", err)
                        lost[m] = lost.get(m, 0) + (int(found[1]) if found else 0)
                        events[m].append(handed_over(m, work / "out"))
                ratios[mode].append(pair[mode] / pair["baseline"])
                print(f"round {r + 1} {mode:32s} {pair[mode]:9.0f} req/s, ratio {ratios[mode][-1]:.3f}",
                      file=sys.stderr)
        costs = {m: cost(m, ns, str(work / "out"), a.requests, a.concurrency)
                 for m in traced if m.startswith("tcpscope")}
    finally:
        stop_nginx(ns, nginx)

    base = statistics.median(rates["baseline"])
    print(f"\n{a.rounds} rounds of ab -n {a.requests} -c {a.concurrency}, nginx on loopback, "
          f"{os.cpu_count()} CPUs; baseline median {base:.0f} connections/s\n")
    print("| mode | median conn/s | median ratio to its baseline | middle half of ratios | exec to attached "
          "| peak RSS | lost events | events per connection |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| baseline (nothing attached) | {base:.0f} | 1.00 | | | | | |")
    for mode in traced:
        q = statistics.quantiles(ratios[mode], n=4) if len(ratios[mode]) > 1 else ratios[mode] * 3
        ours = mode.startswith("tcpscope")
        up = f"{statistics.median(startup[mode]):.3f} s" if startup[mode] and ours else ""
        mem = f"{rss[mode] / 1024:.0f} MiB" if mode in rss and ours else ""
        lo = str(lost.get(mode, "")) if ours else ""
        per = f"{statistics.median(events[mode]) / a.requests:.3f}" if ours and events[mode] else ""
        print(f"| {mode} | {statistics.median(rates[mode]):.0f} | {statistics.median(ratios[mode]):.3f} "
              f"| {q[0]:.3f}-{q[2]:.3f} | {up} | {mem} | {lo} | {per} |")
    # What an untraced connection costs: all CPUs' time together (wall time x CPUs,
    # per connection) and the busiest CPU's busy time alone, which bounds the rate
    # where the work does not spread evenly.
    budget = os.cpu_count() * 1e6 / base
    bottleneck = statistics.median(busiest)
    print(f"\nExact cost per connection (one more run each). An untraced connection takes {budget:.0f} µs "
          f"of all CPUs' time here, and {bottleneck:.0f} µs of the busiest CPU's:\n")
    print("| mode | kernel program runs | their run time, µs | tcpscope process, µs "
          "| together, share of all CPUs | share of the busiest CPU |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, (runs, kernel_us, process_us) in costs.items():
        print(f"| {mode} | {runs:.1f} | {kernel_us:.2f} | {process_us:.2f} "
              f"| {(kernel_us + process_us) / budget:.1%} | {(kernel_us + process_us) / bottleneck:.1%} |")
    print("\n(Statistics add two clock reads to every program run, about 0.05 µs, included above.)")


if __name__ == "__main__":
    main()
