"""tracefs: found where it is mounted, or mounted where it belongs."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

from ._errors import EnvironmentProblem

__all__ = ["tracefs_root", "event_dir", "find_event", "CANDIDATES"]

CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_root: str | None = None


def _mount_tracefs(target: str) -> bool:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return libc.mount(b"tracefs", target.encode(), b"tracefs", 0, None) == 0


def tracefs_root() -> str:
    """The tracefs mount point, mounting it at /sys/kernel/tracing if needed."""
    global _root
    if _root is None:
        for path in CANDIDATES:
            if os.path.isdir(os.path.join(path, "events")):
                _root = path
                break
        else:
            target = CANDIDATES[0]
            if not (os.path.isdir(target) and _mount_tracefs(target)):
                raise EnvironmentProblem(
                    f"tracefs is not mounted and cannot be mounted at {target} "
                    f"({os.strerror(ctypes.get_errno()) if os.path.isdir(target) else 'no such directory'}); "
                    f"mount it with 'mount -t tracefs tracefs {target}'"
                )
            _root = target
    return _root


def event_dir(category: str, event: str) -> str:
    return os.path.join(tracefs_root(), "events", category, event)


def find_event(event: str) -> str | None:
    """CATEGORY:EVENT for a tracepoint name, or None when the kernel has none."""
    events = os.path.join(tracefs_root(), "events")
    for category in sorted(os.listdir(events)):
        if os.path.isdir(os.path.join(events, category, event)):
            return f"{category}:{event}"
    return None
