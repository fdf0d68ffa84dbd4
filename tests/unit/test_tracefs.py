"""Tracepoint format files recorded from Linux 6.18, parsed, and tplist's rendering of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpscope.cli import build_parser
from tcpscope.ebpf.tracefs import EventFormat, parse_format
from tcpscope.options import make_config
from tcpscope.tools.tplist import Tplist, tracepoint_values

FORMATS = Path(__file__).parent.parent / "fixtures" / "formats"


def fixture(name: str) -> EventFormat:
    category = name.split("_", 1)[0]
    return parse_format(category, (FORMATS / f"{name}.format").read_text())


def test_fields_offsets_and_sizes() -> None:
    probe = fixture("tcp_tcp_probe")
    assert probe.name == "tcp:tcp_probe" and probe.id > 0
    fields = {f.name: f for f in probe.fields}
    assert [f.name for f in probe.fields if f.common] == ["common_type", "common_flags",
                                                            "common_preempt_count", "common_pid"]
    saddr = fields["saddr"]
    assert (saddr.declaration, saddr.offset, saddr.size) == ("__u8 saddr[28]", 8, 28)
    assert (fields["skaddr"].declaration, fields["skaddr"].offset) == ("const void * skaddr", 128)
    assert fields["common_pid"].signed and not fields["srtt"].signed


def test_data_loc_strings() -> None:
    xmit = {f.name: f for f in fixture("net_net_dev_xmit").fields}
    assert xmit["name"].data_loc and xmit["name"].declaration == "__data_loc char[] name"
    assert not xmit["len"].data_loc


def test_symbol_tables() -> None:
    state = fixture("sock_inet_sock_set_state").symbols
    assert state["newstate"][1] == "TCP_ESTABLISHED" and state["newstate"][12] == "TCP_NEW_SYN_RECV"
    assert len(state["oldstate"]) == 12
    assert state["protocol"] == {6: "IPPROTO_TCP", 132: "IPPROTO_SCTP", 262: "IPPROTO_MPTCP"}
    drops = fixture("skb_kfree_skb").symbols["reason"]
    assert drops[2] == "NOT_SPECIFIED" and drops[3] == "NO_SOCKET" and len(drops) > 100
    reset = fixture("tcp_tcp_send_reset").symbols
    assert reset["reason"][0] == "NOT_SPECIFIED"
    # Where the kernel did not export an enum to tracefs, the value stays a name.
    assert reset["state"]["TCP_ESTABLISHED"] == "TCP_ESTABLISHED"


def test_not_a_format_file() -> None:
    with pytest.raises(ValueError):
        parse_format("tcp", "hello")


def listed(events: list[EventFormat], *argv: str) -> str:
    """What 'tcpscope tplist ARGV' prints for these tracepoints."""
    tool = Tplist(make_config(vars(build_parser().parse_args(["tplist", *argv]))))
    render = tool.renderer()
    row = tool.row_maker(render)
    return (render.header() or "") + "".join(render.line(row(tracepoint_values(e))) for e in events)


def test_tplist_rendering() -> None:
    retransmit = fixture("tcp_tcp_retransmit_skb")
    assert listed([retransmit]) == "tcp:tcp_retransmit_skb\n"
    lines = listed([retransmit], "-v").splitlines()
    assert lines[:3] == ["tcp:tcp_retransmit_skb", "    const void * skbaddr;", "    const void * skaddr;"]
    assert lines[-1] == "    int err;"
    verbose = listed([fixture("sock_inet_sock_set_state")], "-vv")
    assert "    int newstate;  /* offset 20, size 4, signed */" in verbose
    assert "    newstate: 1=TCP_ESTABLISHED 2=TCP_SYN_SENT" in verbose
    record = json.loads(listed([retransmit], "-j"))
    assert record["name"] == "tcp:tcp_retransmit_skb" and record["id"] == retransmit.id
    assert [f["name"] for f in record["fields"]][-1] == "err"
    assert record["fields"][0] == {"name": "skbaddr", "declaration": "const void * skbaddr", "offset": 8,
                                   "size": 8, "signed": False, "data_loc": False}
