"""tcpscope drop: drops the test makes, checked against nftables' own counter and the kernel's names."""

from __future__ import annotations

import csv
import io
import re
import sys

from tcpscope.ebpf.tracefs import read_format
from tests.live.conftest import KERNEL, Netns, Tracer

CONNECTS = """
import socket
for port in (9, 7777):  # nothing listens on 9; nftables drops what goes to 7777
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        pass
"""
DROP = ("add table inet d; add chain inet d in { type filter hook input priority 0; }; "
        "add rule inet d in tcp dport 7777 counter drop")


def test_drops_with_the_kernels_reasons(netns: Netns) -> None:
    netns.run(["sysctl", "-qw", "net.ipv4.tcp_syn_retries=1"])
    netns.run(["nft", DROP])
    tracer = Tracer("drop", "-j", "--stack", "-N", netns.path)
    as_csv = Tracer("drop", "-s", "--stack", "-N", netns.path)
    bare = Tracer("drop", "-j", "--no-owner", "-N", netns.path)
    assert bare.attached_programs() == ["drop_skb"]  # nothing runs per connection
    proc = netns.popen([sys.executable, "-c", CONNECTS])
    assert proc.wait(timeout=30) == 0
    rows, err = tracer.stop_json()
    bare_rows, _ = bare.stop_json(settle=0)
    text, _, _ = as_csv.stop(settle=0)
    ruleset = netns.run(["nft", "list", "ruleset"]).stdout
    counted = int(re.search(r"counter packets (\d+)", ruleset)[1])  # type: ignore[index]

    reasons = set(read_format("skb:kfree_skb").symbols["reason"].values())
    assert {r["reason"] for r in rows} <= reasons  # every name is the running kernel's
    filtered = [r for r in rows if r["rport"] == 7777]
    assert len(filtered) == counted >= 2  # the SYN and its retries
    assert {(r["reason"], r["flags"], r["state"]) for r in filtered} == {("NETFILTER_DROP", "SYN", None)}
    closed = [r for r in rows if r["rport"] == 9]
    assert [(r["reason"], r["flags"]) for r in closed] == [("NO_SOCKET", "SYN")]
    assert all(r["laddr"] == r["raddr"] == "127.0.0.1" for r in filtered + closed)
    # The stack says where: netfilter's hook for its drops, TCP's receive path for the other.
    assert all("nf_hook_slow" in r["stack"] for r in filtered)
    assert "tcp_v4_rcv" in closed[0]["stack"]
    # CSV has the stack too, in a column of its own.
    csv_rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["DPORT"], r["STACK"]) for r in csv_rows] == [(str(r["rport"]), r["stack"]) for r in rows]
    assert "lost" not in err
    if KERNEL < (6, 11):  # the tracepoint does not pass the receiving socket: said at start
        assert "note: the owners of receiving sockets are not known" in err
    same = ("reason", "flags", "rport", "state")
    assert [[r[k] for k in same] for r in bare_rows] == [[r[k] for k in same] for r in rows]
    assert {r["owner"] for r in bare_rows} == {"unknown"}
