"""A BPF ring buffer read straight from its memory mapping.

Records are decoded in batches without a call into libbpf per record. The
kernel side wakes the reader only when a lot of data waits (see
event_submit() in bpf/common.bpf.h), so the reader polls on a short timer
instead: few wakeups under load, and a bounded delay when it is quiet.
"""

from __future__ import annotations

import mmap
import select
import struct
from collections.abc import Callable
from typing import Any

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

    def drain(self, decode: Callable[[Any, int], Any]) -> list[Any]:
        """Decode every committed record with decode(buffer, offset)."""
        data, page, mask = self._data, self._page, self._mask
        cons = _U64.unpack_from(self._consumer, 0)[0]
        prod = _U64.unpack_from(data, 0)[0]
        out = []
        while cons < prod:
            pos = page + (cons & mask)
            length = _U32.unpack_from(data, pos)[0]
            if length & _BUSY:
                break
            if not length & _DISCARD:
                out.append(decode(data, pos + _HEADER))
            cons += (length & ~_DISCARD) + _HEADER + 7 & ~7
        _U64.pack_into(self._consumer, 0, cons)
        return out

    def close(self) -> None:
        self._poll.close()
        self._consumer.close()
        self._data.close()
