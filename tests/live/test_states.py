"""tcpscope states: each connection's exact transition sequence."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

import pytest

from tests.live.conftest import PYTHON_COMM, WORKLOAD, Netns, Server, Tracer, run_client

ACTIVE_OPEN = [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED")]
PASSIVE_OPEN = [("LISTEN", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED")]
ACTIVE_CLOSE = [("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT2", "CLOSE")]
PASSIVE_CLOSE = [("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSE")]
SIMULTANEOUS_CLOSE = [("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "CLOSING"), ("CLOSING", "CLOSE")]
LISTENER = [("CLOSE", "LISTEN"), ("LISTEN", "CLOSE")]


def by_socket(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    socks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        socks[r["skaddr"]].append(r)
    return socks


def sequence(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["oldstate"], r["newstate"]) for r in rows]


def check_durations(rows: list[dict[str, Any]]) -> None:
    """MS is the time since the socket's previous change, from the same clock."""
    assert rows[0]["duration_ms"] is None  # the state before the first change was not seen
    for prev, cur in zip(rows, rows[1:]):
        assert cur["duration_ms"] == pytest.approx((cur["time"] - prev["time"]) * 1e3, abs=0.01)


def three_sockets(rows: list[dict[str, Any]], port: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(listener, client, server child) rows of a one-connection workload."""
    socks = by_socket(rows)
    assert len(socks) == 3, sequence(rows)
    listener = next(s for s in socks.values() if s[0]["newstate"] == "LISTEN")
    client = next(s for s in socks.values() if s[0]["newstate"] == "SYN_SENT")
    child = next(s for s in socks.values() if s[0]["newstate"] == "SYN_RECV")
    assert listener[0]["lport"] == port and child[0]["lport"] == port and client[0]["rport"] == port
    return listener, client, child


@pytest.mark.parametrize("client_closes", [True, False])
def test_active_and_passive_close(netns: Netns, client_closes: bool) -> None:
    tracer = Tracer("states", "-j", "-N", netns.path)
    srv = Server(netns, expect=100, reply=200, close="second" if client_closes else "first")
    client_pid = run_client(netns, port=srv.port, send=100, expect=200,
                            close="first" if client_closes else "second")
    srv.wait()
    rows, _ = tracer.stop_json()
    listener, client, child = three_sockets(rows, srv.port)

    assert sequence(listener) == LISTENER
    if client_closes:
        assert sequence(client) == ACTIVE_OPEN + ACTIVE_CLOSE
        assert sequence(child) == PASSIVE_OPEN + PASSIVE_CLOSE
    else:
        assert sequence(client) == ACTIVE_OPEN + PASSIVE_CLOSE
        assert sequence(child) == PASSIVE_OPEN + ACTIVE_CLOSE
    for sock in (listener, client, child):
        check_durations(sock)
    # CLOSE -> SYN_SENT happens before connect() picks a local port.
    assert client[0]["lport"] == 0 and len({r["lport"] for r in client[1:]}) == 1
    # Owners: the client throughout; the child starts with its listener's
    # process as a stand-in, until the server reads from it.
    assert {(r["pid"], r["comm"], r["owner"]) for r in client} == {(client_pid, PYTHON_COMM, "task")}
    assert [r["owner"] for r in child[:2]] == ["listener", "listener"]
    assert {r["owner"] for r in child[2:]} == {"task"}
    assert {r["pid"] for r in child + listener} == {srv.pid}
    assert client[0]["cpu_pid"] == client_pid  # connect() runs in the client


def test_refused_connect(netns: Netns) -> None:
    tracer = Tracer("states", "-j", "-N", netns.path)
    probe = netns.popen([sys.executable, "-c", "import socket\n"
                         "try: socket.create_connection(('127.0.0.1', 9))\n"
                         "except ConnectionRefusedError: print('refused')"], stdout=subprocess.PIPE)
    out, _ = probe.communicate(timeout=10)
    assert out.strip() == "refused"
    rows, _ = tracer.stop_json()
    assert sequence(rows) == [("CLOSE", "SYN_SENT"), ("SYN_SENT", "CLOSE")]
    assert {(r["pid"], r["rport"]) for r in rows} == {(probe.pid, 9)}


def test_rst_abort_with_linger_zero(netns: Netns) -> None:
    before = netns.counters()
    tracer = Tracer("states", "-j", "-N", netns.path)
    srv = Server(netns, expect=10, reply=10, close="second")
    run_client(netns, port=srv.port, send=10, expect=10, abort=True)
    srv.wait()
    rows, _ = tracer.stop_json()
    _listener, client, child = three_sockets(rows, srv.port)
    assert sequence(client) == ACTIVE_OPEN + [("ESTABLISHED", "CLOSE")]
    assert sequence(child) == PASSIVE_OPEN + [("ESTABLISHED", "CLOSE")]
    after = netns.counters()
    assert after["TcpOutRsts"] - before["TcpOutRsts"] == 1
    assert after["TcpEstabResets"] - before["TcpEstabResets"] == 2


def test_simultaneous_close(netns: Netns) -> None:
    """Both ends send FIN before seeing the other's: FIN_WAIT1 -> CLOSING."""
    tracer = Tracer("states", "-j", "-N", netns.path)
    pair = netns.popen([sys.executable, WORKLOAD, "pair"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert pair.stdin is not None and pair.stdout is not None
    assert pair.stdout.readline().startswith("ready")
    # Hold both FINs back, then let their retransmissions cross: the two
    # retransmit timers were armed together and expire in the same tick.
    netns.run(["nft", "add table inet hold; add chain inet hold out { type filter hook output priority 0; };"
               " add rule inet hold out tcp flags & fin == fin drop"])
    pair.stdin.write("go\n")
    pair.stdin.flush()
    assert pair.stdout.readline().strip() == "sent"
    time.sleep(0.3)
    netns.run(["nft", "delete table inet hold"])
    assert pair.stdout.readline().strip() == "done"
    assert pair.wait(timeout=10) == 0
    rows, _ = tracer.stop_json()
    socks = [s for s in by_socket(rows).values() if s[0]["newstate"] != "LISTEN"]
    assert len(socks) == 2
    for sock in socks:
        assert sequence(sock)[-3:] == SIMULTANEOUS_CLOSE
