"""tcpscope life against real connections, each test in its own namespace."""

from __future__ import annotations

import subprocess
from collections import Counter
from typing import Any

import pytest

from tests.live.conftest import (
    PYTHON_COMM,
    Client,
    Netns,
    Nginx,
    Server,
    Tracer,
    run_client,
    without_handshake_duplicates,
)


def rows_by_side(rows: list[dict[str, Any]], server_port: int) -> tuple[list[dict], list[dict]]:
    servers = [r for r in rows if r["lport"] == server_port]
    clients = [r for r in rows if r["rport"] == server_port]
    assert len(servers) + len(clients) == len(rows), rows
    return clients, servers


@pytest.mark.parametrize("family", ["4", "6"])
@pytest.mark.parametrize("close", ["first", "second"])
def test_python_pair_exact(netns: Netns, family: str, close: str) -> None:
    n, request, reply = 5, 1234, 56789
    before = netns.counters()
    tracer = Tracer("life", "-j", "-N", netns.path)
    srv = Server(netns, family=family, count=n, expect=request, reply=reply, close=close)
    client_pid = run_client(netns, family=family, port=srv.port, count=n, send=request, expect=reply)
    srv.wait()
    rows, err = tracer.stop_json()
    after = netns.counters()

    rows, duplicates = without_handshake_duplicates(rows)
    clients, servers = rows_by_side(rows, srv.port)
    assert len(clients) == n and len(servers) == n
    loopback = "::1" if family == "6" else "127.0.0.1"
    for r in clients:
        assert (r["pid"], r["comm"], r["owner"]) == (client_pid, PYTHON_COMM, "task")
        assert (r["tx_bytes"], r["rx_bytes"]) == (request, reply)
    for r in servers:
        assert (r["pid"], r["comm"], r["owner"]) == (srv.pid, PYTHON_COMM, "task")
        assert (r["tx_bytes"], r["rx_bytes"]) == (reply, request)
    for r in rows:
        assert r["family"] == int(family)
        assert r["laddr"] == r["raddr"] == loopback
        assert r["netns"] == netns.inode
        assert r["duration_ms"] > 0
    # Each client port pairs with exactly one server row.
    assert sorted(r["lport"] for r in clients) == sorted(r["rport"] for r in servers)
    assert len({r["lport"] for r in clients}) == n
    # The kernel's own counters agree.
    assert after["TcpActiveOpens"] - before["TcpActiveOpens"] == len(clients)
    assert after["TcpPassiveOpens"] - before["TcpPassiveOpens"] == len(servers) + duplicates
    assert "lost" not in err


def test_nginx_workers_and_ab(netns: Netns, nginx: Nginx) -> None:
    n = 40
    before = netns.counters()
    tracer = Tracer("life", "-j", "-N", netns.path)
    ab = netns.popen(["ab", "-q", "-n", str(n), "-c", "4", f"http://127.0.0.1:{nginx.port}/file"],
                     stdout=subprocess.DEVNULL)
    assert ab.wait(timeout=60) == 0
    rows, _err = tracer.stop_json()
    after = netns.counters()

    rows, duplicates = without_handshake_duplicates(rows)
    log = nginx.log()  # one line per request: the oracle for ports, bytes and worker
    assert len(log) == n
    workers = nginx.workers()
    clients, servers = rows_by_side(rows, nginx.port)
    server_by_port = {r["rport"]: r for r in servers}
    client_by_port = {r["lport"]: r for r in clients}
    assert len(server_by_port) == len(servers) and len(client_by_port) == len(clients)
    assert set(client_by_port) == set(server_by_port)
    for remote_port, request_bytes, response_bytes, worker_pid in log:
        s, c = server_by_port.pop(remote_port), client_by_port.pop(remote_port)
        assert s["pid"] == worker_pid and worker_pid in workers  # the worker, not the master
        assert (s["comm"], s["owner"]) == ("nginx", "task")
        assert (s["rx_bytes"], s["tx_bytes"]) == (request_bytes, response_bytes)
        assert (c["pid"], c["comm"], c["owner"]) == (ab.pid, "ab", "task")
        assert (c["tx_bytes"], c["rx_bytes"]) == (request_bytes, response_bytes)
    # ab -c opens up to c-1 spare connections that it closes unused: real
    # sessions that nginx never logs. They carry no bytes at all.
    assert len(client_by_port) <= 3
    for port, c in client_by_port.items():
        s = server_by_port[port]
        assert (c["pid"], c["tx_bytes"], c["rx_bytes"]) == (ab.pid, 0, 0)
        assert (s["comm"], s["tx_bytes"], s["rx_bytes"]) == ("nginx", 0, 0) and s["pid"] in workers
    assert after["TcpActiveOpens"] - before["TcpActiveOpens"] == len(clients)
    assert after["TcpPassiveOpens"] - before["TcpPassiveOpens"] == len(servers) + duplicates


def _sides(rows: list[dict[str, Any]], w: dict[str, Any]) -> Counter[str]:
    """Name each row by which workload socket it is: c4 s4 c6 s6."""
    names: Counter[str] = Counter()
    for r in rows:  # a server row has the server's port as its local port
        family = "4" if r["family"] == 4 else "6"
        server = w["s" + family]
        names[("s" if r["lport"] == server.port else "c") + family] += 1
    return names


@pytest.mark.parametrize(
    "option, expected",
    [
        ([], {"c4", "s4", "c6", "s6"}),
        (["-4"], {"c4", "s4"}),
        (["-6"], {"c6", "s6"}),
        (["-p", "{c4}"], {"c4"}),
        (["-p", "{s6}"], {"s6"}),
        (["-L", "{s4port}"], {"s4"}),
        (["-D", "{s6port}"], {"c6"}),
        (["-L", "{s4port},{s6port}", "-6"], {"s6"}),
    ],
)
def test_filters(netns: Netns, option: list[str], expected: set[str]) -> None:
    # Servers and held clients exist first, so the filter can name their pids and ports.
    s4 = Server(netns, family="4", expect=10, reply=20)
    s6 = Server(netns, family="6", expect=30, reply=40)
    c4 = Client(netns, family="4", port=s4.port, send=10, expect=20)
    c6 = Client(netns, family="6", port=s6.port, send=30, expect=40)
    values = {"s4port": s4.port, "s6port": s6.port, "s4": s4.pid, "s6": s6.pid, "c4": c4.pid, "c6": c6.pid}
    tracer = Tracer("life", "-j", "-N", netns.path, *[o.format(**values) for o in option])
    c4.go()
    c6.go()
    s4.wait()
    s6.wait()
    rows, _ = tracer.stop_json()
    assert _sides(rows, {"s4": s4, "s6": s6}) == Counter({name: 1 for name in expected})
    for r in rows:
        assert r["pid"] in values.values()


def test_netns_filter(netns: Netns, netns2: Netns) -> None:
    """Two namespaces with the same workload: -N picks exactly one."""
    tracer = Tracer("life", "-j", "-N", netns2.path)
    for ns in (netns, netns2):
        srv = Server(ns, expect=7, reply=9)
        run_client(ns, port=srv.port, send=7, expect=9)
        srv.wait()
    rows, _ = tracer.stop_json()
    assert len(rows) == 2
    assert {r["netns"] for r in rows} == {netns2.inode}
