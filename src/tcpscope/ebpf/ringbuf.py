"""A BPF ring buffer read straight from its memory mapping.

Records are decoded in batches without a call into libbpf per record: a run
of committed records of one size unpacks in a single struct.iter_unpack call.
The kernel side wakes the reader only when a lot of data waits (see
event_submit() in bpf/common.bpf.h), so the reader also polls on a short
timer: few wakeups under load, and a bounded delay when it is quiet.
"""

from __future__ import annotations

import mmap
import select
import struct
from typing import Any

from .btf import Layout

__all__ = ["RingBuffer"]

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HEADER = 8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class RingBuffer:
    def __init__(self, map_fd: int, size: int) -> None:
        if size & (size - 1) or size % mmap.PAGESIZE:
            raise ValueError(f"ring buffer size {size} is not a power-of-two number of pages")
        page = mmap.PAGESIZE
        self._page = page
        self._mask = size - 1
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        # Producer page, then the data mapped twice so no record wraps.
        self._data = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._poll = select.epoll()
        self._poll.register(map_fd, select.EPOLLIN)

    def wait(self, timeout: float) -> None:
        """Sleep until the kernel wakes us or timeout seconds pass."""
        self._poll.poll(timeout)

    def drain(self, layout: Layout, limit: int = 1 << 30) -> list[tuple[Any, ...]]:
        """Committed records (at most about limit), each decoded as layout's
        fields in a plain tuple."""
        data, page, mask = self._data, self._page, self._mask
        cons = _U64.unpack_from(self._consumer, 0)[0]
        prod = _U64.unpack_from(data, 0)[0]
        out: list[tuple[Any, ...]] = []
        codec = layout.ring_codec()
        view = memoryview(data)
        while cons < prod and len(out) < limit:
            pos = page + (cons & mask)
            length = _U32.unpack_from(data, pos)[0]
            if length & _BUSY:
                break
            if length == layout.size:
                # A run of committed records of this size: unpack them at once.
                stride = codec.size
                span = view[pos:pos + min((prod - cons) // stride, limit) * stride]
                lengths = span.cast("I")[::stride // 4].tolist()
                run = len(lengths) if lengths.count(length) == len(lengths) else _run(lengths, length)
                out += codec.iter_unpack(span[:run * stride])
                cons += run * stride
                continue
            if not length & _DISCARD:
                raise ValueError(f"ring buffer record of {length} bytes, expected {layout.size}")
            cons += (length & ~_DISCARD) + _HEADER + 7 & ~7
        view.release()
        _U64.pack_into(self._consumer, 0, cons)
        return out

    def drain_raw(self, limit: int = 1 << 30) -> list[bytes]:
        """Committed records of any size, as bytes (for records without a layout)."""
        data, page, mask = self._data, self._page, self._mask
        cons = _U64.unpack_from(self._consumer, 0)[0]
        prod = _U64.unpack_from(data, 0)[0]
        out: list[bytes] = []
        while cons < prod and len(out) < limit:
            pos = page + (cons & mask)
            length = _U32.unpack_from(data, pos)[0]
            if length & _BUSY:
                break
            if not length & _DISCARD:
                out.append(data[pos + _HEADER:pos + _HEADER + length])
            cons += (length & ~_DISCARD) + _HEADER + 7 & ~7
        _U64.pack_into(self._consumer, 0, cons)
        return out

    def close(self) -> None:
        self._poll.close()
        self._consumer.close()
        self._data.close()


def _run(lengths: list[int], length: int) -> int:
    """How many leading entries equal length."""
    for i, value in enumerate(lengths):
        if value != length:
            return i
    return len(lengths)
