"""tcpscope retrans against real packet loss, with the namespace's own counters as the oracle."""

from __future__ import annotations

import pytest

from tests.live.conftest import KERNEL, Netns, Server, Tracer, run_client

# Drop a share of the server's data packets (not its SYN-ACK, nor pure ACKs). On the
# way in, they are lost on the wire as far as the sender can tell, so it retransmits;
# on the way out, the sender's own transmission fails, and so do some retransmits.
LOSS = ("add table inet loss; add chain inet loss {hook} {{ type filter hook {hook} priority 0; }}; "
        "add rule inet loss {hook} tcp sport {port} meta length > 200 numgen random mod 10 < {tenths} drop")


# Offloads on (as on a normal interface): a retransmitted TSO/GSO packet carries several
# segments, each counted by TcpRetransSegs. Off (one segment per packet) with loss on the
# way out too: a failed retransmit adds its segments to TcpRetransSegs but 1 to
# TCPRetransFail, so only with one segment each do the counters tell how many were sent.
# With offloads a 500 kB reply is a few dozen packets of up to 64 kB: more data, and a
# higher loss, make retransmits certain.
@pytest.mark.parametrize("hooks, offloads, size", [({"input": 2}, True, 4_000_000),
                                                    ({"input": 1, "output": 2}, False, 500_000)],
                         ids=["offloads", "one-segment-packets"])
def test_retransmits_match_the_kernel_counters(netns: Netns, hooks: dict[str, int], offloads: bool,
                                               size: int) -> None:
    netns.run(["ip", "link", "set", "lo", "mtu", "1500", *([] if offloads else ["gso_max_segs", "1"])])
    events = Tracer("retrans", "-j", "-N", netns.path)
    counts = Tracer("retrans", "-c", "-j", "-N", netns.path)
    bare = Tracer("retrans", "-j", "--no-owner", "-N", netns.path)
    # Counts show no owners: neither runs anything per connection.
    assert counts.attached_programs() == bare.attached_programs() == ["retrans_skb"]
    assert counts.map_sizes()["socks"] == bare.map_sizes()["socks"] == 1
    assert events.map_sizes()["socks"] == 1 << 18
    # The client sends nothing: with the server's data (and the ACKs riding on it)
    # dropped, a request of its own could be retransmitted too. The server listens
    # while tracing, so its connection carries its owner from the start.
    srv = Server(netns, expect=0, reply=size)
    for hook, tenths in hooks.items():
        netns.run(["nft", LOSS.format(hook=hook, port=srv.port, tenths=tenths)])
    before = netns.counters()
    run_client(netns, port=srv.port, send=0, expect=size)
    srv.wait()
    # The orphaned server socket may still retransmit its FIN: read the counters only
    # when it is gone, and before the tracers stop.
    netns.wait_no_sockets(srv.port)
    after = netns.counters()
    rows, err = events.stop_json(settle=1.0)
    flows, _ = counts.stop_json(settle=0)
    bare_rows, _ = bare.stop_json(settle=0)

    segments = after["TcpRetransSegs"] - before["TcpRetransSegs"]  # attempted
    failures = after["TcpExtTCPRetransFail"] - before["TcpExtTCPRetransFail"]  # attempted, failed
    sent = [r for r in rows if r["type"] == "retransmit"]
    failed = [r for r in rows if r["type"] == "failed"]
    assert len(sent) > 10 and "lost" not in err
    carried = sum(r["segs"] for r in sent)
    # On failure, what a diagnosis needs: every counter that moved, and the events' errors.
    moved = {k: after[k] - before[k] for k in after if after[k] != before.get(k)}
    errors = sorted(r["err"] for r in failed)
    assert carried == segments - failures, f"{len(sent)} sent, errors {errors}, {moved}, {err}"
    if offloads:
        assert carried > len(sent)  # some retransmits carried several segments
    else:
        assert {r["segs"] for r in sent} == {1}
    if KERNEL >= (6, 17):
        # The tracepoint also reports retransmits the kernel did not even attempt (throttled:
        # -EAGAIN, -EBUSY), which neither counter counts.
        assert len(failed) >= failures
    else:  # it fires only for retransmits sent: said at start
        assert failed == [] and "note: retransmits that fail to go out are not seen" in err
    assert all((r["type"] == "failed") == (r["err"] != 0) for r in rows)
    for r in rows:
        assert (r["laddr"], r["lport"], r["raddr"]) == ("127.0.0.1", srv.port, "127.0.0.1")
        assert r["pid"] == srv.pid and r["owner"] in ("task", "listener")
        assert r["state"] in ("ESTABLISHED", "FIN_WAIT1", "CLOSING", "LAST_ACK")
    assert len({r["rport"] for r in rows}) == 1
    assert [(f["lport"], f["rport"], f["retransmits"], f["segments"], f["failed"]) for f in flows] == [
        (srv.port, rows[0]["rport"], len(sent), carried, len(failed))]
    # --no-owner: the same retransmits, owners unknown.
    same = ("type", "seq", "segs", "state", "lport", "rport")
    assert [[r[k] for k in same] for r in bare_rows] == [[r[k] for k in same] for r in rows]
    assert {(r["pid"], r["owner"]) for r in bare_rows} == {(None, "unknown")}
