"""The scripts in examples/, run as a user would run them, against known workloads:
their exact output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.live.conftest import PYTHON_COMM, Netns, Server, run_client

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


class Example:
    """examples/NAME.py ARGS..., running; ready once it says on stderr that it watches."""

    def __init__(self, name: str, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(EXAMPLES / f"{name}.py"), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        ready = self.proc.stderr.readline()
        if not ready.startswith(("Watching ", "Counting ")):
            self.proc.kill()
            raise AssertionError(f"{name} did not start: {ready}{self.proc.stderr.read()}")

    def output(self) -> list[str]:
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0 and err == "", err
        return out.splitlines()


def test_top_talkers(netns: Netns, netns2: Netns) -> None:
    # One server, two clients: three processes with different totals, and a small pair.
    big = Server(netns, count=3, expect=100, reply=300_000)
    small = Server(netns, count=1, expect=10, reply=20)
    elsewhere = Server(netns2, expect=10, reply=2_000_000)  # more bytes, in another namespace
    example = Example("top_talkers", "--seconds", "4", "--top", "3", "--netns", netns.path)
    one = run_client(netns, port=big.port, count=1, send=100, expect=300_000)
    two = run_client(netns, port=big.port, count=2, send=100, expect=300_000)
    run_client(netns, port=small.port, send=10, expect=20)
    run_client(netns2, port=elsewhere.port, send=10, expect=2_000_000)
    for server in (big, small, elsewhere):
        server.wait()
    assert [line.split() for line in example.output()] == [
        ["PID", "COMM", "SESSIONS", "TX_BYTES", "RX_BYTES", "TOTAL"],
        [str(big.pid), PYTHON_COMM, "3", "900000", "300", "900300"],
        [str(two), PYTHON_COMM, "2", "200", "600000", "600200"],
        [str(one), PYTHON_COMM, "1", "100", "300000", "300100"],
    ]


# Two listeners; the final ACKs of their clients' handshakes are dropped for a while:
# two clients of the first, one of the second, one SYN-ACK retransmit each.
HALF_OPEN = """
import socket, sys, time
listeners = [socket.socket() for _ in range(2)]
for srv in listeners:
    srv.bind(("127.0.0.1", 0)); srv.listen(8)
print(*(srv.getsockname()[1] for srv in listeners), flush=True)
sys.stdin.readline()  # the test drops the clients' final ACKs now
clients = [socket.create_connection(srv.getsockname()) for srv, n in zip(listeners, (2, 1)) for _ in range(n)]
time.sleep(1.6)  # one SYN-ACK retransmit each, after about a second
print("done", flush=True)
sys.stdin.readline()  # the final ACKs may pass again
for c in clients:
    c.sendall(b"x")  # completes the handshake: no more SYN-ACKs
for srv, n in zip(listeners, (2, 1)):
    for _ in range(n):
        conn, _ = srv.accept()
        conn.recv(1)
print("accepted", flush=True)
"""
DROP_FINAL_ACK = ("add table inet h; add chain inet h in {{ type filter hook input priority 0; }}; "
                  "add rule inet h in tcp dport {{ {0}, {1} }} tcp flags & (syn | ack | fin | rst) == ack "
                  "meta length < 100 drop")


def test_synack_alert_fires_at_the_threshold(netns: Netns) -> None:
    # One interval, long enough for the three to start and the workload to run under
    # emulation too (the kernel matrix's guests).
    window = ["--interval", "10", "--seconds", "10", "--netns", str(netns.inode)]
    examples = {threshold: Example("synack_alert", "--threshold", str(threshold), *window)
                for threshold in (1, 2, 3)}
    server = netns.popen([sys.executable, "-c", HALF_OPEN], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None and server.stdout is not None
    first, second = (int(port) for port in server.stdout.readline().split())
    before = netns.counters()
    netns.run(["nft", DROP_FINAL_ACK.format(first, second)])
    server.stdin.write("\n")
    server.stdin.flush()
    assert server.stdout.readline().strip() == "done"
    netns.run(["nft", "delete table inet h"])
    server.stdin.write("\n")
    server.stdin.flush()
    assert server.stdout.readline().strip() == "accepted"
    assert server.wait(timeout=10) == 0
    after = netns.counters()
    assert after["TcpExtTCPSynRetrans"] - before["TcpExtTCPSynRetrans"] == 3  # the workload did as meant

    def alert(port: int, n: int, threshold: int) -> str:
        return (f"ALERT 127.0.0.1:{port} {PYTHON_COMM} (pid {server.pid}): {n} SYN-ACK retransmits "
                f"in 10 s (threshold {threshold})")

    alerts = {threshold: [line.split(None, 1)[1] for line in example.output()]
              for threshold, example in examples.items()}
    assert alerts == {
        1: [alert(port, n, 1) for port, n in sorted([(first, 2), (second, 1)])],  # by port
        2: [alert(first, 2, 2)],
        3: [],
    }


CONNECTS = """
import socket
served = socket.socket(); served.bind(("127.0.0.1", 6000)); served.listen(8)
flaky = socket.socket(); flaky.bind(("127.0.0.1", 6001)); flaky.listen(8)
def attempt(port):
    try:
        socket.create_connection(("127.0.0.1", port)).close()
    except ConnectionRefusedError:
        pass
for port in (6000, 6001, 6000, 6001, 6000, 6000):
    attempt(port)
flaky.close()
for port in (9, 6001, 9, 9):
    attempt(port)
"""


def test_connect_failures(netns: Netns, netns2: Netns) -> None:
    example = Example("connect_failures", "--seconds", "3", "--netns", netns.path)
    before = netns.counters()
    workload = netns.popen([sys.executable, "-c", CONNECTS])
    elsewhere = netns2.popen([sys.executable, "-c", CONNECTS])  # another namespace: not counted
    assert workload.wait(timeout=30) == 0 and elsewhere.wait(timeout=30) == 0
    after = netns.counters()
    assert after["TcpActiveOpens"] - before["TcpActiveOpens"] == 10
    assert after["TcpAttemptFails"] - before["TcpAttemptFails"] == 4
    assert [line.split() for line in example.output()] == [
        ["DESTINATION", "CONNECTS", "FAILED", "RATIO"],
        ["127.0.0.1:9", "3", "3", "100%"],
        ["127.0.0.1:6001", "3", "1", "33%"],
        ["127.0.0.1:6000", "4", "0", "0%"],
    ]
