"""tcpscope synack: handshakes whose final ACK is dropped, checked against TCPSynRetrans."""

from __future__ import annotations

import subprocess
import sys

from tests.live.conftest import Netns, Tracer

HALF_OPEN = """
import socket, sys, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
print(srv.getsockname()[1], flush=True)
sys.stdin.readline()  # the test drops the clients' final ACKs now
clients = [socket.create_connection(srv.getsockname()) for _ in range(2)]
time.sleep(1.6)  # one SYN-ACK retransmit each, after about a second
print("done", flush=True)
sys.stdin.readline()  # the final ACKs may pass again
for c in clients:
    c.sendall(b"x")  # completes the handshake: no more SYN-ACKs
for _ in clients:
    conn, _ = srv.accept()
    conn.recv(1)
print("accepted", flush=True)
"""
DROP_FINAL_ACK = ("add table inet h; add chain inet h in { type filter hook input priority 0; }; "
                  "add rule inet h in tcp dport {port} tcp flags & (syn | ack | fin | rst) == ack "
                  "meta length < 100 drop")


def test_synack_retransmits_per_listener(netns: Netns) -> None:
    events = Tracer("synack", "-j", "-N", netns.path)
    counts = Tracer("synack", "-c", "-j", "-N", netns.path)
    server = netns.popen([sys.executable, "-c", HALF_OPEN], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    assert server.stdin is not None and server.stdout is not None
    port = int(server.stdout.readline())
    before = netns.counters()
    netns.run(["nft", DROP_FINAL_ACK.replace("{port}", str(port))])
    server.stdin.write("\n")
    server.stdin.flush()
    assert server.stdout.readline().strip() == "done"
    netns.run(["nft", "delete table inet h"])
    server.stdin.write("\n")
    server.stdin.flush()
    assert server.stdout.readline().strip() == "accepted"
    server.wait(timeout=10)
    after = netns.counters()
    rows, err = events.stop_json()
    listeners, _ = counts.stop_json(settle=0)

    retransmits = after["TcpExtTCPSynRetrans"] - before["TcpExtTCPSynRetrans"]
    assert retransmits >= 2 and len(rows) == retransmits and "lost" not in err
    for r in rows:
        assert (r["lport"], r["laddr"], r["pid"], r["owner"]) == (port, "127.0.0.1", server.pid, "task")
        assert r["max_backlog"] == 8 and 0 <= r["backlog"] <= 8
    assert len({r["rport"] for r in rows}) == 2  # both clients
    assert [(x["lport"], x["retransmits"]) for x in listeners] == [(port, retransmits)]
