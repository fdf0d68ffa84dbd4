"""Value parsing, renderers and the ring buffer reader, without a kernel."""

from __future__ import annotations

import struct

import pytest

from tcpscope._errors import UsageError
from tcpscope._net import Addresses, Names, parse_netns, parse_ports, port_bitmap
from tcpscope._output import Column, CsvRenderer, JsonRenderer, TableRenderer
from tcpscope._ringbuf import RingBuffer


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
    assert parse_netns("4026531840") == 4026531840
    import os

    assert parse_netns("/proc/self/ns/net") == os.stat("/proc/self/ns/net").st_ino
    with pytest.raises(UsageError):
        parse_netns("/proc/self/ns/mnt")  # a namespace, but not a network one


def test_addresses_and_names() -> None:
    addr = Addresses()
    assert addr(2, bytes([10, 0, 0, 1]) + bytes(12)) == "10.0.0.1"
    assert addr(10, bytes(15) + b"\x01") == "::1"
    assert addr(10, bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])) == "::ffff:127.0.0.1"
    names = Names()
    assert names(b"nginx\x00\x00junk") == "nginx"
    assert names(b"caf\xc3\xa9\x00") == "café"
    assert names(b"\xff\xfe\x00") == "\ufffd\ufffd"


COLUMNS = [
    Column("PID", "pid", 5),
    Column("COMM", "comm", 4, truncate=True),
    Column("->", "", 2, table_only=True),
    Column("KB", "bytes", 4, right=True, text=lambda b: str(b // 1024), csv_header="BYTES"),
    Column("MS", "ms", text=lambda v: f"{v:.2f}"),
]


def test_table_csv_json() -> None:
    row = {"pid": 12, "comm": "python3", "bytes": 4096, "ms": 1.5}
    table = TableRenderer(COLUMNS)
    assert table.header() == "PID   COMM ->   KB MS\n"
    assert table.line(row) == "12    pyth ->    4 1.50\n"
    assert table.line({**row, "pid": None}) == "-     pyth ->    4 1.50\n"
    csv = CsvRenderer(COLUMNS)
    assert csv.header() == "PID,COMM,BYTES,MS\n"
    assert csv.line({**row, "comm": 'a,"b"'}) == '12,"a,""b""",4096,1.5\n'
    assert csv.line({**row, "ms": None}) == "12,python3,4096,\n"
    assert JsonRenderer().line({"a": None, "b": "é"}) == '{"a": null, "b": "é"}\n'


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


def test_ring_reader_batches_skips_discarded_and_stops_at_busy() -> None:
    ring = FakeRing(64)
    read = lambda buf, off: bytes(buf[off:off + 4])  # noqa: E731
    ring.put(b"aaaa")
    ring.put(b"bbbb", flags=1 << 30)  # discarded by the producer
    ring.put(b"cccccccc")
    assert ring.drain(read) == [b"aaaa", b"cccc"]
    assert struct.unpack_from("<Q", ring._consumer)[0] == ring.prod
    busy = ring.prod
    ring.put(b"dddd", flags=1 << 31)  # still being written
    assert ring.drain(read) == []
    assert struct.unpack_from("<Q", ring._consumer)[0] == busy
    ring._data[ring._page + (busy & ring._mask) + 3] &= 0x7F  # committed now
    ring.put(b"eeee")  # wraps around the 64-byte ring
    assert ring.drain(read) == [b"dddd", b"eeee"]
