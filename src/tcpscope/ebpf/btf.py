"""BTF and ELF, parsed in pure Python (no root needed).

The kernel programs' object files carry BTF describing every struct they
share with user space. Record layouts and the offsets of rodata/bss
variables are taken from there, so Python never restates an offset.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Btf", "BtfType", "Elf", "Layout", "read_elf", "KIND"]

KIND = {
    "int": 1, "ptr": 2, "array": 3, "struct": 4, "union": 5, "enum": 6, "fwd": 7,
    "typedef": 8, "volatile": 9, "const": 10, "restrict": 11, "func": 12,
    "func_proto": 13, "var": 14, "datasec": 15, "float": 16, "decl_tag": 17,
    "type_tag": 18, "enum64": 19,
}  # fmt: skip
_MODIFIERS = {KIND["typedef"], KIND["volatile"], KIND["const"], KIND["restrict"], KIND["type_tag"]}
_BTF_MAGIC = 0xEB9F


@dataclass(frozen=True)
class Elf:
    """The parts of a little-endian ELF64 object tcpscope reads."""

    sections: dict[str, bytes]
    # global symbol -> (section name, offset in section, size)
    symbols: dict[str, tuple[str, int, int]]


def read_elf(data: bytes) -> Elf:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a little-endian ELF64 object")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_off, names_size = headers[shstrndx][4], headers[shstrndx][5]
    names = data[names_off:names_off + names_size]

    def cstr(table: bytes, off: int) -> str:
        return table[off:table.index(b"\0", off)].decode()

    section_names = [cstr(names, h[0]) for h in headers]
    sections: dict[str, bytes] = {}
    symbols: dict[str, tuple[str, int, int]] = {}
    for name, (_n, sh_type, _f, _a, offset, size, link, *_rest) in zip(section_names, headers):
        sections[name] = b"" if sh_type == 8 else data[offset:offset + size]  # 8: NOBITS
        if sh_type == 2:  # SYMTAB; its strings are in section 'link'
            strings = data[headers[link][4]:headers[link][4] + headers[link][5]]
            for pos in range(offset, offset + size, 24):
                st_name, _info, _other, shndx, value, sym_size = struct.unpack_from("<IBBHQQ", data, pos)
                if st_name and 0 < shndx < len(section_names):
                    symbols[cstr(strings, st_name)] = (section_names[shndx], value, sym_size)
    return Elf(sections, symbols)


@dataclass(frozen=True)
class BtfType:
    kind: int
    name: str
    size: int  # size for sized kinds, referenced type id otherwise
    kind_flag: bool = False
    # struct/union: (name, type id, bit offset); enum: (name, value, 0);
    # datasec: (var type id, offset, size); func_proto: (name, type id, 0)
    members: tuple[tuple[Any, int, int], ...] = ()
    array: tuple[int, int] = (0, 0)  # element type id, count
    int_signed: bool = False


@dataclass(frozen=True)
class Layout:
    """A C struct as Python decodes it: one struct.Struct, fields by name."""

    name: str
    size: int
    fields: tuple[str, ...]
    offsets: dict[str, int] = field(compare=False)
    codec: struct.Struct = field(compare=False)
    record: Any = field(compare=False)  # namedtuple class

    def decode(self, buf: Any, offset: int = 0) -> Any:
        """One record as a named tuple (for counters, tests, tools)."""
        return self.record._make(self.codec.unpack_from(buf, offset))

    def ring_codec(self, header: int = 8) -> struct.Struct:
        """Records as a BPF ring buffer stores them: each behind a header and
        padded to 8 bytes, so a run of them unpacks in one iter_unpack call."""
        stride = (header + self.size + 7) & ~7
        fmt = self.codec.format
        return struct.Struct(f"<{header}x{fmt[1:]}{stride - header - self.size}x")


class Btf:
    def __init__(self, raw: bytes) -> None:
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            "<HBBIIIII", raw
        )
        if magic != _BTF_MAGIC:
            raise ValueError("not BTF data")
        self._strings = raw[hdr_len + str_off:hdr_len + str_off + str_len]
        self.types: list[BtfType] = [BtfType(0, "void", 0)]
        self._parse(raw[hdr_len + type_off:hdr_len + type_off + type_len])
        self._by_name: dict[tuple[str, int], int] = {}
        for type_id, t in enumerate(self.types):
            self._by_name.setdefault((t.name, t.kind), type_id)

    def _str(self, off: int) -> str:
        return self._strings[off:self._strings.index(b"\0", off)].decode()

    def _parse(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            name_off, info, size = struct.unpack_from("<III", data, pos)
            pos += 12
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
            name = self._str(name_off)
            members: tuple[tuple[Any, int, int], ...] = ()
            array = (0, 0)
            signed = False
            if kind == KIND["int"]:
                signed = bool((struct.unpack_from("<I", data, pos)[0] >> 24) & 1)
                pos += 4
            elif kind == KIND["array"]:
                elem, _index, count = struct.unpack_from("<III", data, pos)
                array = (elem, count)
                pos += 12
            elif kind in (KIND["struct"], KIND["union"]):
                m = [struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen)]
                members = tuple((self._str(n), t, off & 0xFFFFFF if kflag else off) for n, t, off in m)
                pos += 12 * vlen
            elif kind == KIND["enum"]:
                m = [struct.unpack_from("<Ii", data, pos + 8 * i) for i in range(vlen)]
                members = tuple((self._str(n), v, 0) for n, v in m)
                pos += 8 * vlen
            elif kind == KIND["enum64"]:
                m = [struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen)]
                members = tuple((self._str(n), lo | hi << 32, 0) for n, lo, hi in m)
                pos += 12 * vlen
            elif kind == KIND["func_proto"]:
                m = [struct.unpack_from("<II", data, pos + 8 * i) for i in range(vlen)]
                members = tuple((self._str(n), t, 0) for n, t in m)
                pos += 8 * vlen
            elif kind == KIND["var"] or kind == KIND["decl_tag"]:
                pos += 4
            elif kind == KIND["datasec"]:
                members = tuple(struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen))
                pos += 12 * vlen
            self.types.append(BtfType(kind, name, size, kflag, members, array, signed))

    def find(self, name: str, kind: str) -> int:
        try:
            return self._by_name[(name, KIND[kind])]
        except KeyError:
            raise KeyError(f"BTF has no {kind} {name!r}") from None

    def resolve(self, type_id: int) -> int:
        """Skip typedefs and qualifiers."""
        while self.types[type_id].kind in _MODIFIERS:
            type_id = self.types[type_id].size
        return type_id

    def size_of(self, type_id: int) -> int:
        t = self.types[self.resolve(type_id)]
        if t.kind == KIND["ptr"]:
            return 8
        if t.kind == KIND["array"]:
            return self.size_of(t.array[0]) * t.array[1]
        return t.size

    def enum(self, name: str) -> dict[str, int]:
        return {n: v for n, v, _ in self.types[self.find(name, "enum")].members}

    def datasec_vars(self, name: str) -> list[str]:
        """Names of a data section's variables. (In an object file their
        offsets are only in the symbol table; libbpf fills them in.)"""
        sec = self.types[self.find(name, "datasec")]
        return [self.types[var].name for var, _off, _size in sec.members]

    def layout(self, struct_name: str) -> Layout:
        t = self.types[self.find(struct_name, "struct")]
        fmt, names, offsets, pos = ["<"], [], {}, 0
        for name, type_id, bit_off in t.members:
            off = bit_off // 8
            if off > pos:
                fmt.append(f"{off - pos}x")
            fmt.append(self._code(type_id, f"{struct_name}.{name}"))
            names.append(name)
            offsets[name] = off
            pos = off + self.size_of(type_id)
        if t.size > pos:
            fmt.append(f"{t.size - pos}x")
        codec = struct.Struct("".join(fmt))
        assert codec.size == t.size, (struct_name, codec.size, t.size)
        record = namedtuple(struct_name, names)  # type: ignore[misc]
        return Layout(struct_name, t.size, tuple(names), offsets, codec, record)

    def _code(self, type_id: int, what: str) -> str:
        t = self.types[self.resolve(type_id)]
        if t.kind == KIND["ptr"]:
            return "Q"
        if t.kind in (KIND["int"], KIND["enum"]):
            code = {1: "b", 2: "h", 4: "i", 8: "q"}[t.size]
            return code if t.kind == KIND["int"] and t.int_signed else code.upper()
        if t.kind in (KIND["array"], KIND["struct"], KIND["union"]):
            return f"{self.size_of(type_id)}s"  # decoded as bytes; a nested struct by its own layout
        raise ValueError(f"{what}: cannot decode BTF kind {t.kind}")
