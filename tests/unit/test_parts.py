"""Value parsing, renderers and the ring buffer reader, without a kernel."""

from __future__ import annotations

import json
import struct
from collections import namedtuple
from typing import Any

import pytest

from tcpscope.ebpf.btf import Layout
from tcpscope.ebpf.ringbuf import RingBuffer
from tcpscope.errors import UsageError
from tcpscope.net import Addresses, Names, parse_milliseconds, parse_netns, parse_ports, port_bitmap
from tcpscope.output import Column, CsvRenderer, Field, Group, JsonRenderer, Renderer, TableRenderer


def test_ports() -> None:
    assert parse_ports("80") == {80}
    assert parse_ports("80, 443,80") == {80, 443}
    assert parse_ports("1,65535") == {1, 65535}
    for bad in ("0", "65536", "-1", "http", "", "80;443"):
        with pytest.raises(UsageError):
            parse_ports(bad)
    bitmap = port_bitmap(frozenset({0x1234, 65535}))
    assert len(bitmap) == 8192 and bitmap[0x1234 >> 3] == 1 << (0x1234 & 7) and bitmap[-1] == 0x80
    assert sum(bin(b).count("1") for b in bitmap) == 2


def test_netns_by_inode_or_path() -> None:
    import os

    own = os.stat("/proc/self/ns/net").st_ino
    assert parse_netns(str(own)) == own
    with pytest.raises(UsageError, match="no network namespace 12345 is in use"):
        parse_netns("12345")
    assert parse_netns("/proc/self/ns/net") == own
    with pytest.raises(UsageError):
        parse_netns("/proc/self/ns/mnt")  # a namespace, but not a network one


def test_addresses_and_names() -> None:
    addr = Addresses()
    assert addr[2, bytes([10, 0, 0, 1]) + bytes(12)] == "10.0.0.1"
    assert addr[10, bytes(15) + b"\x01"] == "::1"
    assert addr[10, bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])] == "::ffff:127.0.0.1"
    names = Names()
    assert names[b"nginx\x00\x00junk"] == "nginx"
    assert names[b"caf\xc3\xa9\x00"] == "café"
    assert names[b"\xff\xfe\x00"] == "\ufffd\ufffd"


COLUMNS = [
    Column("PID", "pid", 5),
    Column("COMM", "comm", 4, truncate=True),
    Column("->", "", 2, table_only=True),
    Column("KB", "bytes", 4, right=True, text=lambda b: str(b // 1024), csv_header="BYTES"),
    Column("MS", "ms", text=lambda v: f"{v:.2f}"),
]


def make_row(renderer: Renderer, cells: list[Any], values: tuple[Any, ...]) -> tuple[Any, ...]:
    """What a tool's row function does: each value through the renderer's converter."""
    return tuple(renderer.convert(c.name)(v) for c, v in zip(cells, values))


def test_groups_are_decoded_once_per_value() -> None:
    seen: list[bytes] = []

    def decode(raw: bytes) -> tuple[int, str]:
        seen.append(raw)
        return raw[0], raw[1:].decode()

    cells = [Field("t", "number", ""), Group("g", (Field("n", "number", ""), Field("s", "text", "")))]
    columns = [Column("S", "s", 3), Column("N", "n", 2), Column("T", "t")]
    table = TableRenderer(columns, cells, {"g": decode})
    json = JsonRenderer(cells, {"g": decode})
    assert table.line(make_row(table, cells, (1, b"\x07ab"))) == "ab  7  1\n"
    assert json.line(make_row(json, cells, (2, b"\x07ab"))) == '{"t": 2, "n": 7, "s": "ab"}\n'
    assert json.line(make_row(json, cells, (3, b"\x08c"))) == '{"t": 3, "n": 8, "s": "c"}\n'
    assert table.line(make_row(table, cells, (4, b"\x07ab"))) == "ab  7  4\n"
    assert seen == [b"\x07ab", b"\x07ab", b"\x08c"]  # once per renderer and value


FIELDS = [
    Field("pid", "number", "", nullable=True),
    Field("comm", "text", ""),
    Field("bytes", "number", ""),
    Field("ms", "number", "", nullable=True),
    Field("state", "word", ""),
    Field("peer", "word", "", nullable=True),
]


def test_table_csv_json() -> None:
    row = (12, "python3", 4096, 1.5, "CLOSE", None)
    table = TableRenderer(COLUMNS, FIELDS, {})
    assert table.header() == "PID   COMM ->   KB MS\n"
    assert table.line(row) == "12    pyth ->    4 1.50\n"
    assert table.line((None, *row[1:])) == "-     pyth ->    4 1.50\n"
    csv = CsvRenderer(COLUMNS, FIELDS, {})
    assert csv.header() == "PID,COMM,BYTES,MS\n"
    assert csv.line((12, 'a,"b"', 4096, 1.5, "X", None)) == '12,"a,""b""",4096,1.5\n'
    assert csv.line((12, "python3", 4096, None, "X", None)) == "12,python3,4096,\n"
    render = JsonRenderer(FIELDS, {})
    line = render.line(make_row(render, FIELDS, (None, 'é"\\\n', 1, None, "CLOSE", "::1")))
    assert json.loads(line) == {"pid": None, "comm": 'é"\\\n', "bytes": 1, "ms": None, "state": "CLOSE",
                                "peer": "::1"}
    assert render.line(make_row(render, FIELDS, (3, "x", 2, 0.25, "A", None))) == (
        '{"pid": 3, "comm": "x", "bytes": 2, "ms": 0.25, "state": "A", "peer": null}\n')


class FakeRing(RingBuffer):
    """The reader's logic over plain memory laid out as the kernel lays it out."""

    def __init__(self, size: int, page: int = 4096) -> None:
        self._page, self._mask = page, size - 1
        self._consumer = bytearray(page)
        self._data = bytearray(page + 2 * size)
        self.size, self.prod = size, 0

    def put(self, payload: bytes, flags: int = 0) -> None:
        pos = self._page + (self.prod & self._mask)
        record = struct.pack("<II", len(payload) | flags, 0) + payload
        for base in (pos, pos + self.size):  # the data area is mapped twice
            end = min(base + len(record), len(self._data))
            self._data[base:end] = record[: end - base]
        self.prod += (len(payload) + 8 + 7) & ~7
        struct.pack_into("<Q", self._data, 0, self.prod)


FOUR = Layout("four", 4, ("text",), {"text": 0}, struct.Struct("<4s"), namedtuple("four", ["text"]))


def test_ring_reader_batches_skips_discarded_and_stops_at_busy() -> None:
    ring = FakeRing(64)
    ring.put(b"aaaa")
    ring.put(b"bbbb", flags=1 << 30)  # discarded by the producer
    ring.put(b"cccc")
    ring.put(b"dddd")
    assert ring.drain(FOUR) == [(b"aaaa",), (b"cccc",), (b"dddd",)]
    assert struct.unpack_from("<Q", ring._consumer)[0] == ring.prod
    busy = ring.prod
    ring.put(b"eeee", flags=1 << 31)  # still being written
    ring.put(b"ffff")  # committed, but behind a busy one
    assert ring.drain(FOUR) == []
    assert struct.unpack_from("<Q", ring._consumer)[0] == busy
    for base in (busy, busy + ring.size):  # committed now
        ring._data[ring._page + (base & ring._mask) + 3] &= 0x7F
    ring.put(b"gggg")  # wraps around the 64-byte ring
    assert ring.drain(FOUR) == [(b"eeee",), (b"ffff",), (b"gggg",)]
    ring.put(b"hhhhhhhh"[:4])
    assert ring.drain(FOUR) == [(b"hhhh",)]


def test_milliseconds_from_zero() -> None:
    assert parse_milliseconds("0") == 0.0 and parse_milliseconds("2.5") == 2.5
    for bad in ("-1", "nan", "inf", "1e13", "abc", ""):
        with pytest.raises(UsageError, match="is not a number of milliseconds"):
            parse_milliseconds(bad)
