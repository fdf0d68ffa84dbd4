"""tcpscope accept: who accepted each connection, the accept queue, and connections
that closed in the queue, against the namespace's counters."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from tests.live.conftest import Netns, Tracer, refused_before

# Six connections wait in the accept queue; then three children, one after the
# other, accept two each. Each child prints its pid and its peers' ports.
FORKING = """
import os, socket, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 6100)); srv.listen(16)
other = socket.socket(); other.bind(("127.0.0.1", 6101)); other.listen(4)
clients = [socket.create_connection(("127.0.0.1", 6100)) for _ in range(6)]
extra = socket.create_connection(("127.0.0.1", 6101))
for _ in range(3):
    if os.fork() == 0:
        ports = [srv.accept()[1][1] for _ in range(2)]
        print(os.getpid(), *ports, flush=True)
        os._exit(0)
    os.wait()
other.accept()
"""

# Dual-stack listener 6200 (listen() while tracing) and listener 6300 (before
# tracing), neither accepting: connections close in their queues.
UNACCEPTED = """
import socket, struct, sys
def reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
old = socket.socket(); old.bind(("127.0.0.1", 6300)); old.listen(4)
print("listening", flush=True); sys.stdin.readline()  # the tracer starts now
srv = socket.socket(socket.AF_INET6); srv.bind(("::", 6200)); srv.listen(4)
v4 = socket.create_connection(("127.0.0.1", 6200))
v6 = socket.create_connection(("::1", 6200))
print(v4.getsockname()[1], v6.getsockname()[1], flush=True)
reset(v4)  # the client resets a queued connection
reset(socket.create_connection(("127.0.0.1", 6300)))
srv.close()  # the listener closes with v6 still queued
"""


@refused_before((6, 2), "accept")
def test_forking_server_children_accept(netns: Netns) -> None:
    events = Tracer("accept", "-j", "-N", netns.path)
    only = Tracer("accept", "-j", "-L", "6101", "-N", netns.path)
    table = Tracer("accept", "-N", netns.path)
    before = netns.counters()
    out = netns.run([sys.executable, "-c", FORKING]).stdout
    after = netns.counters()
    rows, err = events.stop_json()
    only_rows, _ = only.stop_json(settle=0)
    text, _, _ = table.stop(settle=0)

    accepted = {}
    for line in out.splitlines():
        pid, *ports = map(int, line.split())
        accepted.update({port: pid for port in ports})
    assert len(accepted) == 6 and len(set(accepted.values())) == 3
    server = [r for r in rows if r["lport"] == 6100]
    assert {r["rport"]: r["pid"] for r in server} == accepted  # each child, not the parent
    assert [r["backlog"] for r in server] == [5, 4, 3, 2, 1, 0]  # what is left after each accept
    for r in server:
        assert (r["owner"], r["result"], r["max_backlog"], r["laddr"], r["raddr"]) == (
            "task", "accepted", 16, "127.0.0.1", "127.0.0.1")
        assert (r["cpu_pid"], r["netns"]) == (r["pid"], netns.inode)
    assert [(r["lport"], r["backlog"]) for r in only_rows] == [(6101, 0)]
    assert len(rows) == after["TcpPassiveOpens"] - before["TcpPassiveOpens"] == 7
    assert "lost" not in err
    lines = text.splitlines()
    assert lines[0].split() == ["PID", "COMM", "IP", "RADDR", "RPORT", "LADDR", "LPORT", "BL", "RESULT"]
    assert len(lines) == 8 and lines[1].split()[-2:] == ["5/16", "accepted"]


@refused_before((6, 2), "accept")
def test_connections_closed_in_the_queue(netns: Netns) -> None:
    server = netns.popen([sys.executable, "-c", UNACCEPTED], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None and server.stdout is not None
    assert server.stdout.readline().strip() == "listening"
    events = Tracer("accept", "-j", "-N", netns.path)
    table = Tracer("accept", "-N", netns.path)
    owned = Tracer("accept", "-j", "-p", str(server.pid), "-N", netns.path)
    before = netns.counters()
    server.stdin.write("\n")
    server.stdin.flush()
    v4_port, v6_port = map(int, server.stdout.readline().split())
    assert server.wait(timeout=10) == 0
    after = netns.counters()
    rows, _ = events.stop_json()
    text, _, _ = table.stop(settle=0)
    owned_rows, _ = owned.stop_json(settle=0)

    got = [(r["lport"], r["raddr"], r["rport"] if r["lport"] == 6200 else None, r["pid"], r["owner"],
            r["result"], r["backlog"], r["max_backlog"]) for r in rows]
    # An IPv4 client of a dual-stack listener is an IPv6 socket with a mapped address.
    assert got == [
        (6200, "::ffff:127.0.0.1", v4_port, server.pid, "listener", "not accepted", None, None),  # reset
        (6300, "127.0.0.1", None, None, "unknown", "not accepted", None, None),  # listen() before tracing
        (6200, "::1", v6_port, server.pid, "listener", "not accepted", None, None),  # its listener closed
    ]
    assert after["TcpPassiveOpens"] - before["TcpPassiveOpens"] == 3
    # -p: the listener's owner, filtered in the kernel; the unknown one is left out.
    assert [(r["rport"], r["pid"]) for r in owned_rows] == [
        (r["rport"], r["pid"]) for r in rows if r["pid"] == server.pid] and len(owned_rows) == 2
    assert [line.split()[-3:] for line in text.splitlines()[1:]] == [["-", "not", "accepted"]] * 3


BLOCKED = """
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 6400)); srv.listen(4)
print("accepting", flush=True)
conn, peer = srv.accept()  # called before the tracer starts
print(peer[1], flush=True)
"""


@refused_before((6, 2), "accept")
def test_accept_called_before_tracing(netns: Netns) -> None:
    server = netns.popen([sys.executable, "-c", BLOCKED], stdout=subprocess.PIPE)
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "accepting"
    time.sleep(0.2)  # into accept()
    events = Tracer("accept", "-j", "-N", netns.path)
    netns.run([sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1', 6400)).close()"])
    peer = int(server.stdout.readline())
    assert server.wait(timeout=10) == 0
    rows, _ = events.stop_json()

    # Shown, with its accepting process, but no queue: the listener was not seen.
    assert [(r["lport"], r["rport"], r["pid"], r["owner"], r["result"], r["backlog"], r["max_backlog"])
            for r in rows] == [(6400, peer, server.pid, "task", "accepted", None, None)]


# Three accepted connections that end in a reset: the server closes one with unread
# data and one with SO_LINGER 0, the client resets the third. The first is taken
# with accept() (glibc's accept is the accept system call), the others with accept4().
ACCEPTED_THEN_RESET = """
import ctypes, socket, struct
linger0 = struct.pack("ii", 1, 0)
srv = socket.socket(); srv.bind(("127.0.0.1", 6600)); srv.listen(4)
clients = [socket.create_connection(("127.0.0.1", 6600)) for _ in range(3)]
clients[0].sendall(b"unread")
fd = ctypes.CDLL(None, use_errno=True).accept(srv.fileno(), None, None)
assert fd >= 0
conns = [socket.socket(fileno=fd)] + [srv.accept()[0] for _ in range(2)]
print(*(c.getsockname()[1] for c in clients), flush=True)
conns[0].close()  # unread data: a RST
conns[1].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0); conns[1].close()
clients[2].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0); clients[2].close()
"""

# An MPTCP listener (Go's default since 1.24) taking a TCP and an MPTCP client.
MPTCP = """
import socket
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
srv.bind(("127.0.0.1", 6500)); srv.listen(8)
tcp = socket.create_connection(("127.0.0.1", 6500))
mptcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP)
mptcp.connect(("127.0.0.1", 6500))
conns = [srv.accept()[0] for _ in range(2)]
print(tcp.getsockname()[1], mptcp.getsockname()[1], conns[1].proto, flush=True)
"""


@refused_before((6, 2), "accept")
def test_resets_after_accept_are_not_unaccepted(netns: Netns) -> None:
    events = Tracer("accept", "-j", "-N", netns.path)
    server = netns.popen([sys.executable, "-c", ACCEPTED_THEN_RESET], stdout=subprocess.PIPE)
    out, _ = server.communicate(timeout=10)
    rows, err = events.stop_json()

    assert server.returncode == 0
    assert [(r["rport"], r["pid"], r["result"], r["backlog"]) for r in rows] == [
        (port, server.pid, "accepted", left) for port, left in zip(map(int, out.split()), (2, 1, 0))]
    assert "WARNING" not in err


@refused_before((6, 2), "accept")
def test_mptcp_listener(netns: Netns) -> None:
    events = Tracer("accept", "-j", "-N", netns.path)
    server = netns.popen([sys.executable, "-c", MPTCP], stdout=subprocess.PIPE)
    out, _ = server.communicate(timeout=10)
    rows, _ = events.stop_json()

    tcp_port, mptcp_port, proto = map(int, out.split())
    assert server.returncode == 0 and proto == socket.IPPROTO_MPTCP
    # The queue is the listening subflow's; the MPTCP connection is shown as one.
    got = [(r["lport"], r["rport"], r["pid"], r["backlog"], r["max_backlog"], r["result"]) for r in rows]
    assert got == [(6500, tcp_port, server.pid, 1, 8, "accepted"),
                   (6500, mptcp_port, server.pid, 0, 8, "accepted")]
