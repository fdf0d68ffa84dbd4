"""tcpscope connect and connlat: every outcome of connect(), against the namespace's counters."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.live.conftest import Netns, Tracer

# Four connects from one process: established, refused, timed out (SYNs dropped, one
# retry allowed), and aborted (closed while its SYN waits for an answer).
CONNECTS = """
import socket, time
srv = socket.socket(); srv.bind(("127.0.0.1", 6000)); srv.listen()
socket.create_connection(("127.0.0.1", 6000)).close()
for port, timeout in ((9, None), (7777, 10)):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as exc:
        print(exc.errno, flush=True)
s = socket.socket(); s.setblocking(False)
s.connect_ex(("127.0.0.1", 7777)); time.sleep(0.2); s.close()
"""
DROP_SYNS = ("add table inet d; add chain inet d in { type filter hook input priority 0; }; "
             "add rule inet d in tcp dport 7777 tcp flags syn drop")


def test_every_outcome(netns: Netns) -> None:
    netns.run(["sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"])
    netns.run(["nft", DROP_SYNS])
    before = netns.counters()
    events = Tracer("connect", "-j", "-N", netns.path)
    counts = Tracer("connect", "-c", "-j", "-N", netns.path)
    assert counts.map_sizes()["socks"] == 1 << 18  # counting still follows connects in progress
    latency = Tracer("connlat", "-j", "-N", netns.path)
    slow = Tracer("connect", "-j", "--min-ms", "1000", "-N", netns.path)
    proc = netns.popen([sys.executable, "-c", CONNECTS])
    assert proc.wait(timeout=30) == 0
    after = netns.counters()
    assert events.map_entries("socks") == 0  # every connect's entry ended with it
    rows, _ = events.stop_json()
    dests, _ = counts.stop_json(settle=0)
    answered, _ = latency.stop_json(settle=0)
    slow_rows, _ = slow.stop_json(settle=0)

    got = [(r["rport"], r["result"], r["error"]) for r in rows]
    assert got == [(6000, "established", None), (9, "refused", "ECONNREFUSED"),
                   (7777, "timed out", "ETIMEDOUT"), (7777, "aborted", None)]
    assert all((r["pid"], r["owner"]) == (proc.pid, "task") for r in rows)
    lat = {r["result"]: r["latency_ms"] for r in rows}
    assert 0 < lat["established"] < 100 and 0 < lat["refused"] < 100
    assert 2500 < lat["timed out"] < 5000  # the SYN and one retry: 1 s, then 2 s
    assert 150 < lat["aborted"] < 1000
    # The kernel's counters: every connect is an active open; refused and timed-out ones
    # are attempt failures (the kernel does not count a close in SYN_SENT as one).
    assert after["TcpActiveOpens"] - before["TcpActiveOpens"] == len(rows)
    assert after["TcpAttemptFails"] - before["TcpAttemptFails"] == 2
    assert sorted((d["rport"], d["established"], d["failed"]) for d in dests) == [
        (9, 0, 1), (6000, 1, 0), (7777, 0, 2)]
    # connlat: only answered connects; --min-ms: only the slow one, filtered in the kernel.
    assert [(r["rport"], r["result"]) for r in answered] == [(6000, "established"), (9, "refused")]
    assert [(r["rport"], r["result"]) for r in slow_rows] == [(7777, "timed out")]


# Two sockets connect to each other while their SYNs are being dropped; once the rule is
# gone, the retransmitted SYNs cross and at least one side passes through SYN_RECV.
SIMULTANEOUS = """
import select, socket, sys
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 6101)); b.bind(("127.0.0.1", 6102))
a.setblocking(False); b.setblocking(False)
a.connect_ex(("127.0.0.1", 6102)); b.connect_ex(("127.0.0.1", 6101))
print("connecting", flush=True)
sys.stdin.readline()
pending = [a, b]
while pending:
    _, done, _ = select.select([], pending, [], 10)
    assert done, "no answer"
    for s in done:
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        pending.remove(s)
"""
HOLD = ("add table inet hold; add chain inet hold in { type filter hook input priority 0; }; "
        "add rule inet hold in tcp dport { 6101, 6102 } drop")


def test_simultaneous_open(netns: Netns) -> None:
    netns.run(["nft", HOLD])
    before = netns.counters()
    events = Tracer("connect", "-j", "-N", netns.path)
    states = Tracer("states", "-j", "-N", netns.path)
    proc = netns.popen([sys.executable, "-c", SIMULTANEOUS], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout and proc.stdout.readline() == "connecting\n"
    waiting = netns.run(["ss", "-tanH", "state", "syn-sent"]).stdout.count("127.0.0.1:610")
    netns.run(["nft", "delete table inet hold"])
    proc.stdin.write("go\n")
    proc.stdin.close()
    assert proc.wait(timeout=20) == 0
    time.sleep(0.3)  # the last ACK
    assert events.map_entries("socks") == 0
    rows, err = events.stop_json()
    changes, _ = states.stop_json(settle=0)
    after = netns.counters()

    assert waiting == 4  # both sockets in SYN_SENT (each line has two such addresses)
    assert ("SYN_SENT", "SYN_RECV") in {(c["oldstate"], c["newstate"]) for c in changes}
    assert sorted((r["lport"], r["rport"], r["result"], r["pid"]) for r in rows) == [
        (6101, 6102, "established", proc.pid), (6102, 6101, "established", proc.pid)]
    assert all(900 < r["latency_ms"] < 5000 for r in rows)  # answered by the retransmitted SYNs
    assert after["TcpActiveOpens"] - before["TcpActiveOpens"] == 2
    assert "lost" not in err
