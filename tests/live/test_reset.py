"""tcpscope reset: RSTs made three ways, checked against TcpOutRsts and the test's own count."""

from __future__ import annotations

import sys

from tests.live.conftest import KERNEL, Netns, Tracer

RESETS = """
import socket, struct, time
for port in (9, 8888):  # nothing listens on 9; nftables rejects 8888 with a RST
    try:
        socket.create_connection(("127.0.0.1", port))
    except ConnectionRefusedError:
        pass
srv = socket.socket(); srv.bind(("127.0.0.1", 6001)); srv.listen()
c = socket.create_connection(("127.0.0.1", 6001)); conn, _ = srv.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()  # an abort: RST
time.sleep(0.1)
"""
REJECT = ("add table inet r; add chain inet r in { type filter hook input priority 0; }; "
          "add rule inet r in tcp dport 8888 reject with tcp reset")


def test_sent_and_received_resets(netns: Netns) -> None:
    netns.run(["nft", REJECT])
    before = netns.counters()
    tracer = Tracer("reset", "-j", "-N", netns.path)
    bare = Tracer("reset", "-j", "--no-owner", "-N", netns.path)
    # Without owners, nothing runs per connection: only the two RST tracepoints.
    assert tracer.attached_programs() == ["forget_sock", "owner_reads", "reset_received", "reset_sent",
                                          "reset_track"]
    assert bare.attached_programs() == ["reset_received", "reset_sent"]
    proc = netns.popen([sys.executable, "-c", RESETS])
    assert proc.wait(timeout=20) == 0
    rows, err = tracer.stop_json()
    bare_rows, bare_err = bare.stop_json(settle=0)
    after = netns.counters()

    sent = [r for r in rows if r["direction"] == "sent"]
    received = [r for r in rows if r["direction"] == "received"]
    # TCP sent two: for the closed port (no socket), and the abort.
    assert after["TcpOutRsts"] - before["TcpOutRsts"] == 2
    abort = next(r for r in sent if r["state"] is not None)
    assert (abort["rport"], abort["pid"], abort["owner"]) == (6001, proc.pid, "task")
    if KERNEL >= (6, 10):
        assert len(sent) == 2
        closed = next(r for r in sent if r["state"] is None)
        assert (closed["laddr"], closed["lport"], closed["reason"]) == ("127.0.0.1", 9, "NO_SOCKET")
        assert closed["pid"] is None and closed["owner"] == "unknown"
        assert abort["reason"] and abort["reason"] != "NO_SOCKET"
    else:  # the tracepoint fires only on a full socket, and gives no reason: said at start
        assert sent == [abort] and abort["reason"] is None
        assert "note: RSTs sent without a full socket (to a closed port" in err
        assert "that needs Linux 6.10 or newer" in err
    # Three were received: both refusals (one of them netfilter's RST) and the abort's.
    assert sorted((r["rport"], r["state"]) for r in received) == [
        (9, "SYN_SENT"), (8888, "SYN_SENT"), (abort["lport"], "ESTABLISHED")]
    assert all(r["reason"] is None for r in received)
    assert "lost" not in err
    # --no-owner: the same RSTs, owners unknown.
    same = ("direction", "laddr", "lport", "raddr", "rport", "state", "reason", "cpu_pid")
    assert [[r[k] for k in same] for r in bare_rows] == [[r[k] for k in same] for r in rows]
    assert {(r["pid"], r["comm"], r["owner"]) for r in bare_rows} == {(None, None, "unknown")}
    assert "lost" not in bare_err
