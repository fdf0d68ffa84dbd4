"""A BPF object's life: open -> set constants -> load -> attach -> close.

ObjectSpec is the pure part (the object file and its BTF, readable without
root); BpfObject is the privileged part. Each step raises its own error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import platform
import struct
from typing import Any

from ..errors import KernelRefused, MissingFeature, TcpscopeError
from .btf import Btf, Layout, read_elf
from .kernel import require_btf
from .libbpf import libbpf
from .ringbuf import RingBuffer
from .tracefs import find_event

__all__ = ["ObjectSpec", "BpfObject", "RawMap", "RawTracepointProgram"]

class ObjectSpec:
    """A compiled kernel object (NAME.bpf.o) and its BTF."""

    def __init__(self, path: str) -> None:
        self.name = os.path.basename(path).removesuffix(".bpf.o")
        self.path = path
        with open(self.path, "rb") as f:
            elf = read_elf(f.read())
        self.btf = Btf(elf.sections[".BTF"])
        self._symbols = elf.symbols
        self._layouts: dict[str, Layout] = {}
        # Where the programs attach, e.g. "tp_btf/inet_sock_set_state".
        self.attach_points = sorted(
            s for s in elf.sections if s.startswith(("tp_btf/", "tracepoint/", "raw_tp/"))
        )
        # The names that Python uses to leave programs out and to size maps: checked
        # against these, so that a rename in bpf/ cannot go unnoticed.
        self.programs = frozenset(name for name, (section, _offset, size) in elf.symbols.items()
                                  if section in self.attach_points and size)
        self.maps = frozenset(self.btf.datasec_vars(".maps"))

    def check_names(self, programs: tuple[str, ...] = (), maps: tuple[str, ...] = ()) -> None:
        """Raise for a program or map name this object does not have: a bug in tcpscope."""
        for kind, names, known in (("program", programs, self.programs), ("map", maps, self.maps)):
            unknown = sorted(set(names) - known)
            if unknown:
                raise TcpscopeError(f"{self.name}.bpf.o has no {kind} {', '.join(unknown)} "
                                    f"(it has {', '.join(sorted(known))})")

    def variables(self, section: str) -> dict[str, tuple[int, int]]:
        """Globals of a data section (named by BTF): name -> (offset, size)."""
        out = {}
        for name in self.btf.datasec_vars(section):
            sym_section, offset, size = self._symbols[name]
            assert sym_section == section, (name, sym_section, section)
            out[name] = (offset, size)
        return out

    def layout(self, struct_name: str) -> Layout:
        if struct_name not in self._layouts:
            self._layouts[struct_name] = self.btf.layout(struct_name)
        return self._layouts[struct_name]

    def rodata(self, values: dict[str, Any]) -> dict[str, bytes]:
        """Encode constants for the object's read-only globals, checked against BTF."""
        variables = self.variables(".rodata")
        out = {}
        for name, value in values.items():
            if name not in variables:
                raise KeyError(f"{self.name}: no constant {name!r}")
            size = variables[name][1]
            if isinstance(value, bytes):
                if len(value) != size:
                    raise ValueError(f"{self.name}: {name} takes {size} bytes, not {len(value)}")
                out[name] = value
            else:
                out[name] = int(value).to_bytes(size, "little")
        return out


_BATCH = 4096  # map entries read or deleted per system call
# struct bpf_prog_info (uapi/linux/bpf.h, a stable ABI): where recursion_misses
# is, and room for all of it the kernel may fill.
_RECURSION_MISSES = 208
_PROG_INFO_BYTES = 256


class BpfObject:
    """A loaded and attached object. Use as a context manager: close() frees all."""

    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        self._lib = libbpf()
        self._links: list[int] = []
        self._ringbufs: list[RingBuffer] = []
        self._obj: int | None = None
        self._check_kernel()
        self._obj = self._lib.check_ptr(
            self._lib.bpf_object__open_file(spec.path.encode(), None), f"opening {spec.name}.bpf.o"
        )

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_kernel(self) -> None:
        for section in self.spec.attach_points:
            event = section.rsplit("/", 1)[-1]
            if find_event(event) is None:
                raise MissingFeature(
                    f"this kernel has no tracepoint {event!r} (needed by {self.spec.name}); "
                    "'tcpscope tplist' lists the ones it has"
                )
        require_btf()

    def _maps(self) -> dict[str, int]:
        maps: dict[str, int] = {}
        m = None
        while True:
            m = self._lib.bpf_object__next_map(self._obj, m)
            if not m:
                return maps
            maps[self._lib.bpf_map__name(m).decode()] = m

    def _map(self, name: str) -> int:
        """A map by name; internal maps (.rodata, .bss) by their suffix."""
        for full, m in self._maps().items():
            if full == name or (name.startswith(".") and full.endswith(name)):
                return m
        raise KeyError(f"{self.spec.name}: no map {name!r}")

    def _map_memory(self, name: str) -> tuple[int, int]:
        size = ctypes.c_size_t()
        ptr = self._lib.check_ptr(
            self._lib.bpf_map__initial_value(self._map(name), ctypes.byref(size)),
            f"mapping {name} of {self.spec.name}",
        )
        return ptr, size.value

    def set_constants(self, values: dict[str, Any]) -> None:
        """Write read-only globals (filters, thresholds) before load."""
        ptr, size = self._map_memory(".rodata")
        variables = self.spec.variables(".rodata")
        for name, data in self.spec.rodata(values).items():
            offset = variables[name][0]
            assert offset + len(data) <= size
            ctypes.memmove(ptr + offset, data, len(data))

    def resize(self, map_name: str, max_entries: int) -> None:
        self.spec.check_names(maps=(map_name,))
        self._lib.check(
            self._lib.bpf_map__set_max_entries(self._map(map_name), max_entries),
            f"sizing map {map_name}",
        )

    def skip(self, program_names: tuple[str, ...]) -> None:
        """Do not load (nor attach) these programs of the object."""
        self.spec.check_names(programs=program_names)
        prog = None
        while prog := self._lib.bpf_object__next_program(self._obj, prog):
            if self._lib.bpf_program__name(prog).decode() in program_names:
                self._lib.check(self._lib.bpf_program__set_autoload(prog, False), "leaving a program out")

    def load(self) -> None:
        err = self._lib.bpf_object__load(self._obj)
        if err < 0:
            detail = _verifier_summary(self._lib.recent_log)
            raise KernelRefused(
                f"the kernel refused to load {self.spec.name}: {os.strerror(-err)}"
                + (f" ({detail})" if detail else "")
                + "; run with -v for libbpf's log"
            )

    def attach(self) -> None:
        prog = None
        while True:
            prog = self._lib.bpf_object__next_program(self._obj, prog)
            if not prog:
                return
            if not self._lib.bpf_program__autoload(prog):
                continue
            section = self._lib.bpf_program__section_name(prog).decode()
            link = self._lib.check_ptr(self._lib.bpf_program__attach(prog), f"attaching to {section}")
            self._links.append(link)

    def recursion_misses(self) -> int:
        """How often the kernel skipped this object's programs: it does not run
        a program on a CPU where that program is already running (a softirq
        hitting the same tracepoint), it only counts a miss (Linux 5.12+)."""
        info = ctypes.create_string_buffer(_PROG_INFO_BYTES)
        total, prog = 0, None
        while prog := self._lib.bpf_object__next_program(self._obj, prog):
            if not self._lib.bpf_program__autoload(prog):
                continue
            size = ctypes.c_uint32(len(info))
            ctypes.memset(info, 0, len(info))
            self._lib.check(self._lib.bpf_obj_get_info_by_fd(self._lib.bpf_program__fd(prog), info,
                                                             ctypes.byref(size)), "reading a program's info")
            if size.value >= _RECURSION_MISSES + 8:
                total += struct.unpack_from("<Q", info.raw, _RECURSION_MISSES)[0]
        return total

    def ring_buffer(self, name: str = "events") -> RingBuffer:
        m = self._map(name)
        rb = RingBuffer(self._lib.bpf_map__fd(m), self._lib.bpf_map__max_entries(m))
        self._ringbufs.append(rb)
        return rb

    def read_global(self, section: str, name: str, struct_name: str) -> Any:
        """A global variable of a data section (.bss, .data), as the kernel has it now."""
        m = self._map(section)
        value = ctypes.create_string_buffer(self._lib.bpf_map__value_size(m))
        key = ctypes.c_uint32(0)
        self._lib.check(
            self._lib.bpf_map_lookup_elem(self._lib.bpf_map__fd(m), ctypes.byref(key), value),
            f"reading {section} of {self.spec.name}",
        )
        offset, size = self.spec.variables(section)[name]
        return self.spec.layout(struct_name).decode(value.raw[offset:offset + size])

    def map_items(self, name: str, key_struct: str, value_struct: str) -> list[tuple[Any, Any]]:
        """Every (key, value) of a hash map, decoded through BTF."""
        key_layout, value_layout = self.spec.layout(key_struct), self.spec.layout(value_struct)
        return [(key_layout.decode(k), value_layout.decode(v)) for k, v in self.map_raw_items(name)]

    def map_raw_items(self, name: str) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of a hash map, as bytes, read in batches: a few system
        calls for thousands of entries."""
        m = self._map(name)
        fd = self._lib.bpf_map__fd(m)
        key_size, value_size = self._lib.bpf_map__key_size(m), self._lib.bpf_map__value_size(m)
        room = min(self._lib.bpf_map__max_entries(m), _BATCH)
        keys = ctypes.create_string_buffer(room * key_size)
        values = ctypes.create_string_buffer(room * value_size)
        token = ctypes.create_string_buffer(8)  # where the kernel's walk of the map stopped
        items: list[tuple[bytes, bytes]] = []
        first = True
        while True:
            count = ctypes.c_uint32(room)
            err = self._lib.bpf_map_lookup_batch(fd, None if first else token, token, keys, values,
                                                 ctypes.byref(count), None)
            first = False
            if err and err != -errno.ENOENT:
                self._lib.check(err, f"reading the map {name} of {self.spec.name}")
            raw_keys, raw_values = keys.raw, values.raw
            items += [(raw_keys[i * key_size:(i + 1) * key_size],
                       raw_values[i * value_size:(i + 1) * value_size]) for i in range(count.value)]
            if err:  # -ENOENT: the walk reached the end
                return items

    def map_delete(self, name: str, raw_keys: list[bytes]) -> None:
        """Delete keys of a hash map (in batches; keys gone already are no error)."""
        fd = self._lib.bpf_map__fd(self._map(name))
        for start in range(0, len(raw_keys), _BATCH):
            chunk = raw_keys[start:start + _BATCH]
            count = ctypes.c_uint32(len(chunk))
            joined = b"".join(chunk)
            err = self._lib.bpf_map_delete_batch(fd, ctypes.create_string_buffer(joined, len(joined)),
                                                 ctypes.byref(count), None)
            if err == -errno.ENOENT:  # a key that was gone stops the batch: delete the rest one by one
                for key in chunk[count.value + 1:]:
                    self._lib.bpf_map_delete_elem(fd, ctypes.create_string_buffer(key, len(key)))
            elif err:
                self._lib.check(err, f"deleting from the map {name} of {self.spec.name}")

    def close(self) -> None:
        for rb in self._ringbufs:
            rb.close()
        self._ringbufs.clear()
        for link in self._links:
            self._lib.bpf_link__destroy(link)
        self._links.clear()
        if self._obj:
            self._lib.bpf_object__close(self._obj)
            self._obj = None


def _verifier_summary(lines: Any) -> str:
    """The most telling line of libbpf's log after a failed load."""
    for raw in reversed(list(lines)):
        line = str(raw).strip()
        if line and not line.startswith(("libbpf:", "--", "processed", "-- END")):
            return line
    return ""




class RawMap:
    """A map made without an object file (for programs built at run time)."""

    RINGBUF, ARRAY = 27, 2

    def __init__(self, kind: int, name: str, key_size: int, value_size: int, max_entries: int) -> None:
        lib = libbpf()
        self.fd = lib.check(lib.bpf_map_create(kind, name.encode(), key_size, value_size, max_entries, None),
                            f"creating map {name}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}
_PERF_TYPE_TRACEPOINT = 2
_PERF_FLAG_FD_CLOEXEC = 8
_PERF_EVENT_IOC_ENABLE = 0x2400
_PERF_EVENT_IOC_SET_BPF = 0x40042408
_PROG_TYPE_TRACEPOINT = 5


def _online_cpus() -> list[int]:
    with open("/sys/devices/system/cpu/online") as f:
        cpus: list[int] = []
        for part in f.read().strip().split(","):
            first, _, last = part.partition("-")
            cpus.extend(range(int(first), int(last or first) + 1))
        return cpus


class RawTracepointProgram:
    """Instructions built at run time, loaded as a classic tracepoint program
    (its context is the tracepoint's record) and attached."""

    def __init__(self, name: str, tracepoint_id: int, instructions: bytes) -> None:
        lib = libbpf()
        self._perf_fds: list[int] = []
        self.fd = lib.bpf_prog_load(_PROG_TYPE_TRACEPOINT, name.encode()[:15], b"GPL", instructions,
                                    len(instructions) // 8, None)
        if self.fd < 0:
            raise KernelRefused(f"the kernel refused the program for {name}: {os.strerror(-self.fd)}")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        attr = bytearray(128)
        struct.pack_into("<IIQQ", attr, 0, _PERF_TYPE_TRACEPOINT, len(attr), tracepoint_id, 1)
        buf = ctypes.create_string_buffer(bytes(attr), len(attr))
        # One perf event, on one CPU, is enough: the program is attached to the
        # tracepoint itself and runs wherever it fires (as libbpf does it).
        try:
            pfd = libc.syscall(_PERF_EVENT_OPEN[platform.machine()], buf, -1, _online_cpus()[0], -1,
                               _PERF_FLAG_FD_CLOEXEC)
            if pfd < 0:
                raise KernelRefused(f"opening tracepoint {name} failed: {os.strerror(ctypes.get_errno())}")
            self._perf_fds.append(pfd)
            fcntl.ioctl(pfd, _PERF_EVENT_IOC_SET_BPF, self.fd)
            fcntl.ioctl(pfd, _PERF_EVENT_IOC_ENABLE, 0)
        except OSError as exc:
            self.close()
            raise KernelRefused(f"attaching to tracepoint {name} failed: {exc.strerror}") from None
        except KernelRefused:
            self.close()
            raise

    def close(self) -> None:
        for pfd in self._perf_fds:
            os.close(pfd)
        self._perf_fds.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
