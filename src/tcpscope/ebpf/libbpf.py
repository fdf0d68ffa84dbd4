"""The only place that talks to libbpf: every argtypes/restype lives here.

Functions that fail raise KernelRefused (or MissingFeature) naming the
operation; libbpf's own log goes to the ``tcpscope.libbpf`` logger.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import platform
from collections import deque
from typing import Any

from ..errors import KernelRefused, MissingFeature

__all__ = ["Libbpf", "libbpf", "MIN_VERSION"]

MIN_VERSION = (1, 0)
LIBRARY_ENV = "TCPSCOPE_LIBBPF"  # path of an alternative libbpf.so

log = logging.getLogger("tcpscope.libbpf")

_vp = ctypes.c_void_p
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
# sizeof(va_list) where it is a structure passed by reference: copying it is
# what va_copy() does, so that a message longer than the first buffer (a
# verifier log can be megabytes) can be formatted again, whole.
_VA_LIST_BYTES = {"x86_64": 24, "aarch64": 32}.get(platform.machine())
_FIRST_BUFFER = 4096

# name: (restype, argtypes)
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "libbpf_major_version": (ctypes.c_uint32, []),
    "libbpf_minor_version": (ctypes.c_uint32, []),
    "libbpf_set_print": (_vp, [_PRINT_FN]),
    "bpf_object__open_file": (_vp, [ctypes.c_char_p, _vp]),
    "bpf_object__load": (ctypes.c_int, [_vp]),
    "bpf_object__close": (None, [_vp]),
    "bpf_object__next_map": (_vp, [_vp, _vp]),
    "bpf_object__next_program": (_vp, [_vp, _vp]),
    "bpf_map__name": (ctypes.c_char_p, [_vp]),
    "bpf_map__fd": (ctypes.c_int, [_vp]),
    "bpf_map__set_max_entries": (ctypes.c_int, [_vp, ctypes.c_uint32]),
    "bpf_map__max_entries": (ctypes.c_uint32, [_vp]),
    "bpf_map__initial_value": (_vp, [_vp, ctypes.POINTER(ctypes.c_size_t)]),
    "bpf_map__value_size": (ctypes.c_uint32, [_vp]),
    "bpf_map__key_size": (ctypes.c_uint32, [_vp]),
    "bpf_map_lookup_elem": (ctypes.c_int, [ctypes.c_int, _vp, _vp]),
    "bpf_map_get_next_key": (ctypes.c_int, [ctypes.c_int, _vp, _vp]),
    "bpf_map_delete_elem": (ctypes.c_int, [ctypes.c_int, _vp]),
    "bpf_map_lookup_batch": (ctypes.c_int, [ctypes.c_int, _vp, _vp, _vp, _vp, ctypes.POINTER(ctypes.c_uint32),
                                            _vp]),
    "bpf_map_delete_batch": (ctypes.c_int, [ctypes.c_int, _vp, ctypes.POINTER(ctypes.c_uint32), _vp]),
    "bpf_program__name": (ctypes.c_char_p, [_vp]),
    "bpf_program__section_name": (ctypes.c_char_p, [_vp]),
    "bpf_program__set_autoload": (ctypes.c_int, [_vp, ctypes.c_bool]),
    "bpf_program__autoload": (ctypes.c_bool, [_vp]),
    "bpf_program__attach": (_vp, [_vp]),
    "bpf_program__fd": (ctypes.c_int, [_vp]),
    "bpf_obj_get_info_by_fd": (ctypes.c_int, [ctypes.c_int, _vp, ctypes.POINTER(ctypes.c_uint32)]),
    "bpf_link__destroy": (ctypes.c_int, [_vp]),
    "bpf_map_create": (ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32,
                                      ctypes.c_uint32, _vp]),
    "bpf_prog_load": (ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                     ctypes.c_size_t, _vp]),
}


class Libbpf:
    """libbpf.so.1, loaded once, with its log routed to logging."""

    def __init__(self, path: str | None = None) -> None:
        path = path or os.environ.get(LIBRARY_ENV) or "libbpf.so.1"
        try:
            self._lib = ctypes.CDLL(path, use_errno=True)
        except OSError as exc:
            raise MissingFeature(
                f"cannot load libbpf ({path}): {exc}; install it with 'apt-get install libbpf1'"
            ) from None
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                func = getattr(self._lib, name)
            except AttributeError:
                raise MissingFeature(
                    f"{path} lacks {name}(): libbpf {MIN_VERSION[0]}.{MIN_VERSION[1]} or newer "
                    "is needed ('apt-get install libbpf1')"
                ) from None
            func.restype = restype
            func.argtypes = argtypes
        self.version = (self._lib.libbpf_major_version(), self._lib.libbpf_minor_version())
        if self.version < MIN_VERSION:
            raise MissingFeature(
                f"libbpf {self.version[0]}.{self.version[1]} at {path} is too old: "
                f"{MIN_VERSION[0]}.{MIN_VERSION[1]} or newer is needed"
            )
        self.recent_log: deque[str] = deque(maxlen=200)  # lines: a failed load's verdict is near the end
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        self._libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, _vp]
        self._libc.vsnprintf.restype = ctypes.c_int
        self._print_fn = _PRINT_FN(self._on_print)  # keep a reference: libbpf holds it
        self._lib.libbpf_set_print(self._print_fn)

    def _on_print(self, level: int, fmt: bytes, args: int) -> int:
        saved = ctypes.string_at(args, _VA_LIST_BYTES) if _VA_LIST_BYTES else b""
        buf = ctypes.create_string_buffer(_FIRST_BUFFER)
        needed = self._libc.vsnprintf(buf, len(buf), fmt, args)
        if needed >= len(buf) and saved:
            buf = ctypes.create_string_buffer(needed + 1)
            self._libc.vsnprintf(buf, len(buf), fmt, ctypes.create_string_buffer(saved, len(saved)))
        text = buf.value.decode(errors="replace").rstrip("\n")
        self.recent_log.extend(text.splitlines())
        log.log(_LEVELS.get(level, logging.DEBUG), "%s", text)
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lib, name)

    @staticmethod
    def check(result: int, what: str) -> int:
        """Raise for a negative libbpf return (an -errno), else pass it on."""
        if result < 0:
            raise KernelRefused(f"{what} failed: {os.strerror(-result)}{_hint(-result)}")
        return result

    @staticmethod
    def check_ptr(ptr: int | None, what: str) -> int:
        """Raise for a NULL libbpf return (errno says why)."""
        if not ptr:
            err = ctypes.get_errno() or errno.EINVAL
            raise KernelRefused(f"{what} failed: {os.strerror(err)}{_hint(err)}")
        return ptr


def _hint(err: int) -> str:
    if err in (errno.EPERM, errno.EACCES):
        return " (tcpscope needs root, or CAP_BPF and CAP_PERFMON)"
    return " (run with -v to see libbpf's log)"


_instance: Libbpf | None = None


def libbpf() -> Libbpf:
    """The process-wide libbpf binding, loaded on first use."""
    global _instance
    if _instance is None:
        _instance = Libbpf()
    return _instance
