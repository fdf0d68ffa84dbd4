"""What the running kernel offers, probed where it is declared (its BTF, its
tracefs format files), never guessed from the version number: distributions
backport features, and a version says nothing of a kernel's configuration.
The version in a Requirement is only for the message a user reads."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from ..errors import MissingFeature
from .tracefs import event_dir, read_format

__all__ = ["Requirement", "kfunc", "kernel_enum", "tracepoint_field", "require", "missing", "release",
           "require_btf", "KERNEL_BTF"]

KERNEL_BTF = "/sys/kernel/btf/vmlinux"
_BTF_KIND_ENUM = 6
_BTF_KIND_FUNC = 12


@dataclass(frozen=True)
class Requirement:
    """Something a tool or feature needs from the kernel."""

    what: str  # in words, e.g. "the bpf_rdonly_cast kfunc"
    since: str  # the first Linux release that has it, e.g. "6.2"
    present: Callable[[], bool]

    def __str__(self) -> str:
        return f"Linux {self.since} or newer ({self.what})"


def release() -> str:
    return os.uname().release


def require_btf() -> None:
    if not os.path.exists(KERNEL_BTF):
        raise MissingFeature(
            f"{KERNEL_BTF} is missing: tcpscope needs a kernel built with CONFIG_DEBUG_INFO_BTF")


@cache
def _kernel_btf() -> tuple[bytes, bytes]:
    """The kernel BTF's type and string sections."""
    require_btf()
    with open(KERNEL_BTF, "rb") as f:
        raw = f.read()
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<IIIII", raw, 4)
    types = raw[hdr_len + type_off:hdr_len + type_off + type_len]
    return types, raw[hdr_len + str_off:hdr_len + str_off + str_len]


def _btf_type(name: str, kind: int) -> int | None:
    """Where the kernel's BTF declares a type of this name and kind (its 12-byte
    header: name offset, info with the kind, size), found without parsing
    the whole BTF."""
    types, strings = _kernel_btf()
    at = strings.find(b"\0" + name.encode() + b"\0")
    if at < 0:
        return None
    needle = struct.pack("<I", at + 1)
    pos = types.find(needle)
    while pos >= 0:
        if pos % 4 == 0 and pos + 12 <= len(types):
            info, = struct.unpack_from("<I", types, pos + 4)
            if (info >> 24) & 0x1F == kind:
                return pos
        pos = types.find(needle, pos + 1)
    return None


@cache
def _btf_has_func(name: str) -> bool:
    """Whether the kernel's BTF declares a function of this name (kfuncs are declared so)."""
    return _btf_type(name, _BTF_KIND_FUNC) is not None


@cache
def kernel_enum(name: str) -> dict[str, int]:
    """The members of an enum as the running kernel declares it ({} when it has none)."""
    pos = _btf_type(name, _BTF_KIND_ENUM)
    if pos is None:
        return {}
    types, strings = _kernel_btf()
    info, = struct.unpack_from("<I", types, pos + 4)
    members = {}
    for i in range(info & 0xFFFF):  # each: name offset, value
        name_off, value = struct.unpack_from("<Ii", types, pos + 12 + 8 * i)
        members[strings[name_off:strings.index(b"\0", name_off)].decode()] = value
    return members


def kfunc(name: str, since: str) -> Requirement:
    return Requirement(f"the {name} kfunc", since, lambda: _btf_has_func(name))


def tracepoint(event: str, since: str) -> Requirement:
    """A tracepoint (CATEGORY:EVENT)."""
    return Requirement(f"the {event} tracepoint", since, lambda: os.path.isdir(event_dir(*event.split(":"))))


def tracepoint_field(event: str, field: str, since: str) -> Requirement:
    """A field of a tracepoint's record (CATEGORY:EVENT), as its format file has it."""

    def present() -> bool:
        return any(f.name == field for f in read_format(event).fields)

    return Requirement(f"the {field!r} field of {event}", since, present)


def missing(requirements: tuple[Requirement, ...]) -> list[Requirement]:
    return [r for r in requirements if not r.present()]


def require(requirements: tuple[Requirement, ...]) -> None:
    """Refuse, in one line naming the kernel needed, what this kernel cannot do."""
    absent = missing(requirements)
    if absent:
        raise MissingFeature(f"needs {absent[0]}; this kernel is {release()}")
