"""Known TCP workloads for the live tests, run inside a test namespace.

server: listen, print its port, serve COUNT connections one at a time: read
        --expect bytes, send --reply bytes, close (first, or after the peer).
client: COUNT connections: send --send bytes, read --expect bytes, close
        (first, or after the peer).
pair:   a connected pair in one process that closes both ends at once.
Each prints 'ready PORT' (server, pair) or 'done' and flushes, so tests can follow.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys


def read_exactly(conn: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = conn.recv(min(65536, n - got))
        if not chunk:
            raise SystemExit(f"peer closed after {got} of {n} bytes")
        got += len(chunk)


def family_of(name: str) -> socket.AddressFamily:
    return socket.AF_INET6 if name == "6" else socket.AF_INET


def loopback(family: str) -> str:
    return "::1" if family == "6" else "127.0.0.1"


def server(a: argparse.Namespace) -> None:
    srv = socket.socket(family_of(a.family), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((loopback(a.family), a.port))
    srv.listen(128)
    print("ready", srv.getsockname()[1], flush=True)
    for _ in range(a.count):
        conn, _peer = srv.accept()
        read_exactly(conn, a.expect)
        conn.sendall(b"s" * a.reply)
        if a.close == "second":
            try:
                conn.recv(1)  # wait for the client's FIN (or RST)
            except ConnectionResetError:
                pass
        conn.close()
    srv.close()
    print("done", flush=True)


def client(a: argparse.Namespace) -> None:
    if a.wait:
        print("waiting", flush=True)
        sys.stdin.readline()
    for _ in range(a.count):
        conn = socket.socket(family_of(a.family), socket.SOCK_STREAM)
        conn.connect((loopback(a.family), a.port))
        conn.sendall(b"c" * a.send)
        read_exactly(conn, a.expect)
        if a.close == "second":
            conn.recv(1)  # wait for the server's FIN
        if a.abort:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    print("done", flush=True)


def pair(a: argparse.Namespace) -> None:
    """Both ends in one process; on 'go' both send FIN back to back, so that
    the two FINs cross (the test holds them back with nftables)."""
    srv = socket.socket(family_of(a.family), socket.SOCK_STREAM)
    srv.bind((loopback(a.family), 0))
    srv.listen(1)
    client = socket.create_connection(srv.getsockname()[:2])
    server, _ = srv.accept()
    srv.close()
    print("ready", server.getsockname()[1], flush=True)
    sys.stdin.readline()
    client.shutdown(socket.SHUT_WR)
    server.shutdown(socket.SHUT_WR)
    print("sent", flush=True)
    for conn in (client, server):
        conn.settimeout(10)
        assert conn.recv(1) == b""
    client.close()
    server.close()
    print("done", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["server", "client", "pair"])
    p.add_argument("--family", choices=["4", "6"], default="4")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--reply", type=int, default=0)
    p.add_argument("--close", choices=["first", "second"], default="first")
    p.add_argument("--abort", action="store_true", help="client: close with SO_LINGER 0 (RST)")
    p.add_argument("--wait", action="store_true", help="client: start on a line from stdin")
    a = p.parse_args()
    {"server": server, "client": client, "pair": pair}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
