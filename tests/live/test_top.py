"""tcpscope top against workloads that know their bytes: iperf3's own counts, and
connections that send and receive set amounts."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

from tests.live.conftest import PYTHON_COMM, Netns, Server, Tracer, refused_before, run_client

# iperf3 opens each data connection by sending the test's 37-byte cookie (COOKIE_SIZE in
# its source), which its byte counts leave out: top sees every byte the calls moved.
IPERF3_COOKIE = 37


def totals(rows: list[dict[str, Any]], key: str) -> dict[Any, list[int]]:
    """rx and tx summed over every report, per row key."""
    sums: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        sums[r[key]][0] += r["rx_bytes"]
        sums[r[key]][1] += r["tx_bytes"]
    return dict(sums)


@refused_before((6, 3), "top")
def test_bytes_equal_iperf3s_counts(netns: Netns) -> None:
    tracer = Tracer("top", "-j", "-N", netns.path, "-i", "0.5")
    server = netns.popen(["iperf3", "-s", "-1", "-p", "5201"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    client = netns.run(["iperf3", "-c", "127.0.0.1", "-p", "5201", "-n", "30M", "-J"])
    assert server.wait(timeout=30) == 0
    rows, err = tracer.stop_json(settle=1.0)
    report = json.loads(client.stdout)
    data_port = report["start"]["connected"][0]["local_port"]
    sent, received = report["end"]["sum_sent"]["bytes"], report["end"]["sum_received"]["bytes"]

    by_port = totals([r for r in rows if 5201 in (r["lport"], r["rport"])], "lport")
    assert by_port[data_port] == [0, sent + IPERF3_COOKIE]  # the client's data connection only sends
    # The server's end of it, found by the client's port: what it read.
    server_rows = [r for r in rows if r["rport"] == data_port]
    assert {r["comm"] for r in server_rows} == {"iperf3"} and {r["pid"] for r in server_rows} == {server.pid}
    assert totals(server_rows, "rport")[data_port] == [received + IPERF3_COOKIE, 0]
    assert sent == 30 * 2**20  # (the server may stop reading before the end: received <= sent)
    assert all(r["rx_bytes"] or r["tx_bytes"] for r in rows)  # no empty rows
    assert "WARNING" not in err


@refused_before((6, 3), "top")
def test_connections_and_processes_exactly(netns: Netns) -> None:
    # Each of 3 connections: the client sends 5000 bytes and reads 7000, the server
    # the other way round; top per connection, per process, and only the server's port.
    conns, send, reply = 3, 5000, 7000
    per_conn = Tracer("top", "-j", "-N", netns.path, "-i", "0.3")
    per_pid = Tracer("top", "-j", "-N", netns.path, "-i", "0.3", "--by", "pid")
    srv = Server(netns, count=conns, expect=send, reply=reply)
    only_server = Tracer("top", "-s", "-N", netns.path, "-L", str(srv.port), "-i", "0.3")
    client_pid = run_client(netns, port=srv.port, count=conns, send=send, expect=reply)
    srv.wait()
    rows, err = per_conn.stop_json(settle=0.8)
    processes, _ = per_pid.stop_json(settle=0)
    out, _, rc = only_server.stop(settle=0)

    assert "WARNING" not in err
    # A row per connection end and report (a slow transfer spans two reports).
    server_side = [r for r in rows if r["lport"] == srv.port]
    client_side = [r for r in rows if r["rport"] == srv.port]
    assert len(rows) == len(server_side) + len(client_side)  # nothing else in the namespace
    client_ports = {r["lport"] for r in client_side}
    assert {r["rport"] for r in server_side} == client_ports and len(client_ports) == conns
    assert totals(client_side, "pid") == {client_pid: [conns * reply, conns * send]}
    assert totals(server_side, "pid") == {srv.pid: [conns * send, conns * reply]}
    for r in rows:
        assert (r["laddr"], r["raddr"], r["family"], r["connections"]) == ("127.0.0.1", "127.0.0.1", 4, 1)
        assert r["comm"] == PYTHON_COMM and r["netns"] == os.stat(netns.path).st_ino
    # --by pid: the same bytes, a row per process and report, its connections counted.
    assert totals(processes, "pid") == {client_pid: [conns * reply, conns * send],
                                        srv.pid: [conns * send, conns * reply]}
    assert all(r["lport"] is None and r["raddr"] is None and r["connections"] >= 1 for r in processes)
    # -L: the server's end only (CSV: exact bytes).
    assert rc == 0
    lines = [line.split(",") for line in out.splitlines()]
    header = lines[0]
    assert header[:3] == ["TIME", "PID", "COMM"] and header[-2:] == ["RX_BYTES", "TX_BYTES"]
    body = [dict(zip(header, line)) for line in lines[1:] if line != header]
    assert {int(r["PID"]) for r in body} == {srv.pid} and {int(r["LPORT"]) for r in body} == {srv.port}
    assert sum(int(r["RX_BYTES"]) for r in body) == conns * send
    assert sum(int(r["TX_BYTES"]) for r in body) == conns * reply


@refused_before((6, 3), "top")
def test_reports_redraw_a_terminal_and_stop_after_n(netns: Netns) -> None:
    # On a terminal each report clears the screen; -n 2 ends after two reports.
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "tcpscope", "top", "-N", netns.path, "-i", "0.5",
                             "-n", "2"], stdout=follower, stderr=subprocess.PIPE, text=True)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed: the tool exited
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait(timeout=10) == 0
    os.close(leader)
    screens = output.decode().split("\x1b[H\x1b[2J")
    assert screens[0] == "" and len(screens) == 3  # two reports, each from a cleared screen
    assert all(s.splitlines()[1].split()[:3] == ["PID", "COMM", "LADDR:LPORT"] for s in screens[1:])
