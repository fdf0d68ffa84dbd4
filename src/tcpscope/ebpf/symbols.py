"""Code addresses as names: the kernel's from /proc/kallsyms, a process's as
the file it maps there and the offset in it (from /proc/PID/maps)."""

from __future__ import annotations

import bisect

__all__ = ["KernelSymbols", "user_location"]


class KernelSymbols:
    """Kernel addresses to function+offset, from /proc/kallsyms (root sees real addresses)."""

    def __init__(self) -> None:
        entries = []
        with open("/proc/kallsyms") as f:
            for line in f:
                address, kind, name = line.split()[:3]
                if kind in "tTwW":
                    entries.append((int(address, 16), name))
        entries.sort()
        self._addresses = [a for a, _ in entries]
        self._names = [n for _, n in entries]

    def __call__(self, address: int) -> str:
        i = bisect.bisect_right(self._addresses, address) - 1
        if i < 0 or not self._addresses[i]:
            return f"0x{address:x}"
        return f"{self._names[i]}+0x{address - self._addresses[i]:x}"


def user_location(pid: int, address: int) -> str:
    """0xADDR (FILE+0xOFFSET) where the process still maps a file there, else 0xADDR."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                span, _perms, offset, _dev, _inode, *path = line.split()
                low, high = (int(x, 16) for x in span.split("-"))
                if low <= address < high and path:
                    return f"0x{address:x} ({path[0]}+0x{address - low + int(offset, 16):x})"
    except OSError:
        pass  # the process is gone
    return f"0x{address:x}"
