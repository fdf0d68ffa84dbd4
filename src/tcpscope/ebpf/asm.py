"""Just enough of the BPF instruction set to build small tracepoint programs
at run time (tcpscope trace: a filter, then copy the record), without a
compiler. Instructions are encoded here and loaded as they are."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = ["Asm", "R0", "R1", "R2", "R3", "R4", "R6", "R7", "R10", "JUMPS", "SIGNED_JUMPS", "HELPER",
           "USER_STACK"]

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)

# instruction classes, sizes, sources, operations (include/uapi/linux/bpf.h)
_LD, _LDX, _ST, _STX, _ALU, _JMP, _ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
_W, _H, _B, _DW = 0x00, 0x08, 0x10, 0x18
_IMM, _MEM, _ATOMIC = 0x00, 0x60, 0xC0
_K, _X = 0x00, 0x08
_ADD, _LSH, _RSH, _ARSH, _MOV, _AND = 0x00, 0x60, 0x70, 0xC0, 0xB0, 0x50
_JA, _CALL, _EXIT = 0x00, 0x80, 0x90
_SIZES = {1: _B, 2: _H, 4: _W, 8: _DW}
PSEUDO_MAP_FD = 1

JUMPS = {"==": 0x10, "!=": 0x50, ">": 0x20, ">=": 0x30, "<": 0xA0, "<=": 0xB0, "&": 0x40}
SIGNED_JUMPS = {"==": 0x10, "!=": 0x50, ">": 0x60, ">=": 0x70, "<": 0xC0, "<=": 0xD0, "&": 0x40}
HELPER = {"map_lookup_elem": 1, "ktime_get_ns": 5, "get_smp_processor_id": 8, "get_current_pid_tgid": 14,
          "get_current_comm": 16, "get_stack": 67, "probe_read_kernel": 113, "probe_read_user_str": 114,
          "probe_read_kernel_str": 115, "ringbuf_reserve": 131, "ringbuf_submit": 132, "ringbuf_discard": 133}
USER_STACK = 1 << 8  # BPF_F_USER_STACK


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One instruction; imm is any 32-bit pattern (signed or not)."""
    return struct.pack("<BBhI", code, (src << 4) | dst, off, imm & 0xFFFFFFFF)


@dataclass
class Asm:
    """A program under construction, with named labels for forward jumps."""

    code: list[bytes] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    fixups: list[tuple[int, str]] = field(default_factory=list)

    def emit(self, *insns: bytes) -> None:
        self.code.extend(insns)

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def mov(self, dst: int, src: int) -> None:
        self.emit(_insn(_ALU64 | _MOV | _X, dst, src))

    def mov32(self, dst: int, src: int) -> None:
        """dst = the low 32 bits of src (the upper ones cleared)."""
        self.emit(_insn(_ALU | _MOV | _X, dst, src))

    def mov_imm(self, dst: int, imm: int) -> None:
        self.emit(_insn(_ALU64 | _MOV | _K, dst, imm=imm))

    def add_imm(self, dst: int, imm: int) -> None:
        self.emit(_insn(_ALU64 | _ADD | _K, dst, imm=imm))

    def add(self, dst: int, src: int) -> None:
        self.emit(_insn(_ALU64 | _ADD | _X, dst, src))

    def and_imm(self, dst: int, imm: int) -> None:
        self.emit(_insn(_ALU64 | _AND | _K, dst, imm=imm))

    def ld_imm64(self, dst: int, value: int, src: int = 0) -> None:
        self.emit(_insn(_LD | _DW | _IMM, dst, src, imm=value & 0xFFFFFFFF),
                  _insn(0, imm=(value >> 32) & 0xFFFFFFFF))

    def ld_map(self, dst: int, map_fd: int) -> None:
        self.ld_imm64(dst, map_fd, PSEUDO_MAP_FD)

    def load(self, dst: int, base: int, off: int, size: int, signed: bool = False) -> None:
        """dst = *(uN *)(base + off), sign-extended to 64 bits when signed."""
        self.emit(_insn(_LDX | _MEM | _SIZES[size], dst, base, off))
        if signed and size < 8:
            bits = 64 - 8 * size
            self.emit(_insn(_ALU64 | _LSH | _K, dst, imm=bits), _insn(_ALU64 | _ARSH | _K, dst, imm=bits))

    def rsh_imm(self, dst: int, imm: int) -> None:
        self.emit(_insn(_ALU64 | _RSH | _K, dst, imm=imm))

    def store(self, base: int, off: int, src: int, size: int = 8) -> None:
        self.emit(_insn(_STX | _MEM | _SIZES[size], base, src, off))

    def store_imm(self, base: int, off: int, imm: int, size: int = 4) -> None:
        self.emit(_insn(_ST | _MEM | _SIZES[size], base, off=off, imm=imm))

    def atomic_add(self, base: int, src: int) -> None:
        self.emit(_insn(_STX | _ATOMIC | _DW, base, src, imm=_ADD))

    def call(self, helper: str) -> None:
        self.emit(_insn(_JMP | _CALL, imm=HELPER[helper]))

    def jump(self, target: str, op: int | None = None, dst: int = 0, src: int | None = None,
             imm: int = 0) -> None:
        """Unconditional (op None), or: if dst OP src (register) / imm, go to target."""
        if op is None:
            code = _JMP | _JA
        else:
            code = _JMP | op | (_X if src is not None else _K)
        self.fixups.append((len(self.code), target))
        self.emit(_insn(code, dst, src or 0, imm=imm))

    def exit(self) -> None:
        self.emit(_insn(_JMP | _EXIT))

    def assemble(self) -> bytes:
        code = list(self.code)
        for index, target in self.fixups:
            c, regs, _off, imm = struct.unpack("<BBhI", code[index])
            code[index] = struct.pack("<BBhI", c, regs, self.labels[target] - index - 1, imm)
        return b"".join(code)
