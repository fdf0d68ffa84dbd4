"""tcpscope cong against real loss: its changes counted by an independent observer,
its time per state against the session's own lifespan."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter

from tests.live.conftest import (
    Netns,
    Server,
    TracepointObserver,
    Tracer,
    run_client,
    without_handshake_duplicates,
)

# Drop a share of the server's data packets on the way in: the sender goes
# through recovery (and, when a retransmit is lost too, loss).
LOSS = ("add table inet loss; add chain inet loss input { type filter hook input priority 0; }; "
        "add rule inet loss input tcp sport {port} meta length > 200 numgen random mod 10 < 1 drop")
HANDSHAKE_OR_CLOSED = ("SYN_SENT", "SYN_RECV", "CLOSE")


def observe_changes(port: int) -> TracepointObserver:
    """tcp:tcp_cong_state_set on the server's end: the new state of each change."""
    return TracepointObserver("tcp:tcp_cong_state_set", f"args->sport == {port}", ("cong_state",))


def test_changes_and_time_per_state(netns: Netns) -> None:
    netns.run(["ip", "link", "set", "lo", "mtu", "1500"])
    size, port = 4_000_000, random.randrange(20000, 30000)  # the namespace is new: the port is free
    observer = observe_changes(port)
    changes = Tracer("cong", "-e", "-j", "-N", netns.path, "-L", str(port))
    flows = Tracer("cong", "-j", "-N", netns.path, "-L", str(port))
    sessions = Tracer("life", "-j", "-N", netns.path, "-L", str(port))
    srv = Server(netns, expect=100, reply=size, port=port)
    # -p: the server's socket gets its owner when the server reads the request.
    owned = Tracer("cong", "-j", "-N", netns.path, "-L", str(port), "-p", str(srv.pid))
    # Counts show no owners: without -p nothing follows them.
    assert flows.attached_programs() == ["cong_change", "cong_track"] and flows.map_sizes()["socks"] == 1
    assert owned.attached_programs() == ["cong_change", "cong_track", "forget_sock", "owner_reads"]
    netns.run(["nft", LOSS.replace("{port}", str(port))])
    before = netns.counters()
    run_client(netns, port=port, send=100, expect=size)
    srv.wait()
    after = netns.counters()
    events, err = changes.stop_json()
    counted, _ = flows.stop_json()
    counted_of_pid, _ = owned.stop_json()
    lives, _ = sessions.stop_json()
    (session,), _ = without_handshake_duplicates(lives)
    seen = Counter(state for (state,) in observer.records())

    names = ("open", "disorder", "cwr", "recovery", "loss")
    assert after["TcpRetransSegs"] > before["TcpRetransSegs"] and "lost" not in err
    # -e: every time the tracepoint fired for the server's socket, no more, no less.
    assert Counter(names.index(e["new_state"]) for e in events) == seen
    assert sum(seen.values()) > 2 and any(e["new_state"] in ("recovery", "loss") for e in events)
    for e in events:
        assert (e["lport"], e["rport"], e["pid"]) == (port, session["rport"], srv.pid)
    # Each change goes from the state the previous one entered.
    for a, b in zip(events, events[1:]):
        assert b["old_state"] == a["new_state"]
    # The accounting: the changes between the handshake's end and the close, time in
    # recovery or loss, and all of it within the session's life.
    (flow,) = counted
    during = [e for e in events if e["tcp_state"] not in HANDSHAKE_OR_CLOSED]
    assert (flow["lport"], flow["rport"], flow["netns"]) == (port, session["rport"], netns.inode)
    assert flow["changes"] == len(during) and flow["closed"] is True
    assert flow["recovery_ms"] + flow["loss_ms"] > 0
    total = sum(flow[f"{state}_ms"] for state in names)
    assert 0 < total <= session["duration_ms"]
    assert [(f["lport"], f["rport"], f["changes"]) for f in counted_of_pid] == [(port, flow["rport"],
                                                                                flow["changes"])]


def test_interval_reports(netns: Netns) -> None:
    # -i 0.5 for 2 s: a report at the end of each interval, the last one at the end.
    command = [sys.executable, "-m", "tcpscope", "cong", "-N", netns.path, "-i", "0.5", "-d", "2"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr
    assert len(lines) == 8 and all(line.startswith("LADDR:LPORT") for line in lines[1::2])
    assert all(time.strptime(line, "%H:%M:%S") for line in lines[::2])
