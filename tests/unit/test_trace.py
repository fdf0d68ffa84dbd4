"""tcpscope trace without a kernel: probes, filters, formats, on recorded format files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tcpscope.ebpf.tracefs import EventFormat, parse_format
from tcpscope.errors import UsageError
from tcpscope.tools.trace import All, Any_, Compare, Const, Field, Not, compile_program, message, parse_probe

FORMATS = Path(__file__).parent.parent / "fixtures" / "formats"
FILES = {"sock:inet_sock_set_state": "sock_inet_sock_set_state", "tcp:tcp_probe": "tcp_tcp_probe",
         "net:net_dev_xmit": "net_net_dev_xmit", "tcp:tcp_send_reset": "tcp_tcp_send_reset"}
SEED = 't:sock:inet_sock_set_state "%llx: %d -> %d", args->skaddr, args->oldstate, args->newstate'


def formats(name: str) -> EventFormat:
    if name not in FILES:
        raise UsageError(f"no tracepoint {name!r}")
    return parse_format(name.split(":")[0], (FORMATS / f"{FILES[name]}.format").read_text())


def probe(text: str):  # noqa: ANN201
    return parse_probe(text, formats)


def record(event: EventFormat, size: int = 256, **values: object) -> bytes:
    """A raw record with these fields set, laid out as the format file says."""
    raw = bytearray(size)
    fields = {f.name: f for f in event.fields}
    for name, value in values.items():
        f = fields[name]
        if isinstance(value, bytes):
            raw[f.offset:f.offset + len(value)] = value
        else:
            code = {1: "b", 2: "h", 4: "i", 8: "q"}[f.size]
            struct.pack_into("<" + (code if f.signed else code.upper()), raw, f.offset, value)
    return bytes(raw)


def test_seed_example() -> None:
    p = probe(SEED)
    assert p.event.name == "sock:inet_sock_set_state" and p.filter is None
    assert [a.name for a in p.args] == ["skaddr", "oldstate", "newstate"]
    raw = record(p.event, skaddr=0xFFFF9FD7DB588000, oldstate=7, newstate=2)
    assert message(p, raw) == "ffff9fd7db588000: 7 -> 2"


def test_filters_parse_to_trees() -> None:
    p = probe("t:sock:inet_sock_set_state (args->newstate == 1) \"x\"")
    assert isinstance(p.filter, Compare) and p.filter.op == "==" and p.filter.right == Const(1)
    p = probe("t:tcp:tcp_probe (!(args->sport == 80 || args->dport == 0x50) && args->data_len > 0)")
    assert isinstance(p.filter, All) and isinstance(p.filter.nodes[0], Not)
    assert isinstance(p.filter.nodes[0].node, Any_)
    assert p.filter.nodes[0].node.nodes[1].right == Const(80)
    p = probe("t:tcp:tcp_probe (args->mark & 4)")
    assert p.filter == Compare(Field(p.event.fields[9]), "&", Const(4))
    p = probe("t:tcp:tcp_probe (args->snd_cwnd)")  # a bare field: true when not zero
    assert isinstance(p.filter, Compare) and p.filter.op == "!="


@pytest.mark.parametrize(
    "text, error",
    [
        ("p::tcp_connect", "no kprobes"),
        ("r::tcp_v4_connect", "no kprobes"),
        ("u:/bin/sh:main", "no kprobes"),
        ("tcp_connect", "is not a probe"),
        ("t:tcp", "is not a probe"),
        ("t:tcp:nope", "no tracepoint"),
        ("t:tcp:tcp_probe (args->nope == 1)", "has no field 'nope'"),
        ("t:tcp:tcp_probe (args->saddr == 1)", "a filter cannot compare it"),
        ("t:net:net_dev_xmit (args->name == 1)", 'compare it with == or != and a "string"'),
        ("t:tcp:tcp_probe (args->sport == )", "expected"),
        ("t:tcp:tcp_probe (args->sport = 1)", "cannot read the filter"),
        ("t:tcp:tcp_probe (args->sport == 1", "unbalanced"),
        ('t:tcp:tcp_probe "%d %d", args->sport', "2 conversions but 1 arguments"),
        ('t:tcp:tcp_probe "%d", args->sport, args->dport', "1 conversions but 2 arguments"),
        ('t:tcp:tcp_probe "%d", sport', "is not args->FIELD"),
        ('t:tcp:tcp_probe "%d', "unterminated"),
        ('t:tcp:tcp_probe "%q", args->sport', "cannot print"),
        ("t:tcp:tcp_probe junk", "unexpected"),
    ],
)
def test_bad_probes(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        probe(text)


def test_conversions() -> None:
    p = probe('t:sock:inet_sock_set_state "%s %s|%-5hu|%5d|%x|%c|%u|%p|%%", args->newstate, args->saddr, '
              "args->sport, args->dport, args->family, args->protocol, args->oldstate, args->skaddr")
    raw = record(p.event, newstate=1, saddr=bytes([10, 0, 0, 7]), sport=80, dport=443, family=10,
                 protocol=65, oldstate=-1, skaddr=0xABC)
    assert message(p, raw) == "TCP_ESTABLISHED 10.0.0.7|80   |  443|a|A|4294967295|0xabc|%"


def test_addresses_strings_and_the_default_format() -> None:
    p = probe('t:tcp:tcp_probe "%s -> %s", args->saddr, args->daddr')
    v4 = struct.pack("<HH4s", 2, 0x5000, bytes([127, 0, 0, 1])) + bytes(20)  # port 80, network order
    v6 = struct.pack("<HHI16s", 10, 0xBB01, 0, bytes(15) + b"\x01") + bytes(4)
    assert message(p, record(p.event, saddr=v4, daddr=v6)) == "127.0.0.1:80 -> [::1]:443"
    xmit = probe("t:net:net_dev_xmit")
    name_loc = (3 << 16) | 200  # 3 bytes at offset 200
    raw = bytearray(record(xmit.event, skbaddr=0x10, len=60, rc=0, name=name_loc))
    raw[200:203] = b"lo\0"
    assert message(xmit, bytes(raw)) == "skbaddr=10 len=60 rc=0 name=lo"


def test_programs_assemble() -> None:
    p = probe("t:tcp:tcp_probe (args->sport == 80 && (args->data_len > 0 || !args->mark))")
    code = compile_program(p, 3, ring_fd=5, lost_fd=6, pid=1234)
    assert len(code) % 8 == 0 and len(code) > 30 * 8


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("args->skaddr == 0xffff888153955c80", 0xFFFF888153955C80),
        ("args->oldstate == 4294967295", 4294967295),
        ("args->dport == 2147483648", 2147483648),
        ("args->oldstate == -1", -1),
        ("args->newstate == TCP_CLOSE", 7),
        ("args->skaddr == 18446744073709551615", (1 << 64) - 1),
    ],
)
def test_constants_of_64_bits_negative_and_named(text: str, value: int) -> None:
    p = probe(f"t:sock:inet_sock_set_state ({text})")
    assert isinstance(p.filter, Compare) and p.filter.right == Const(value)
    code = compile_program(p, 0, 3, 4, None)  # assembles: every immediate is encoded
    assert len(code) % 8 == 0


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("t:sock:inet_sock_set_state (args->skaddr == 18446744073709551616)", "does not fit in 64 bits"),
        ("t:sock:inet_sock_set_state (args->skaddr == -9223372036854775809)", "does not fit in 64 bits"),
        ("t:sock:inet_sock_set_state (args->newstate == " + "9" * 5000 + ")", "does not fit in 64 bits"),
        ("t:sock:inet_sock_set_state (args->newstate == TCP_NOPE)", "has no value called 'TCP_NOPE'"),
        ('t:sock:inet_sock_set_state "%s %x", args->saddr_v6, args->saddr', "%x in .* needs a number"),
        ('t:sock:inet_sock_set_state "%999999999d", args->sport', "at most 256"),
        ("t:tcp:tcp_*", "'tcp:tcp_\\*' in 't:tcp:tcp_\\*' is a pattern: a probe names one tracepoint"),
        ('t:sock:inet_sock_set_state "%.999999999d", args->sport', "at most 256"),
        ('t:sock:inet_sock_set_state "%' + "9" * 5000 + 'd", args->sport', "at most 256"),
    ],
)
def test_what_trace_refuses(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        probe(text)
