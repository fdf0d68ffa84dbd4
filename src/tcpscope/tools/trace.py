"""tcpscope trace: print any tracepoint's fields with a printf-style format (bcc's trace).

Each probe becomes a small classic tracepoint program built at run time from
the running kernel's format file: the filter, compiled to BPF instructions,
then a copy of the record into a ring buffer. No compiler, no kernel headers.
"""

from __future__ import annotations

import ctypes
import re
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..ebpf.asm import JUMPS, R0, R1, R2, R3, R4, R6, R7, R10, SIGNED_JUMPS, USER_STACK, Asm
from ..ebpf.libbpf import libbpf
from ..ebpf.object import RawMap, RawTracepointProgram
from ..ebpf.ringbuf import RingBuffer
from ..ebpf.symbols import KernelSymbols, user_location
from ..ebpf.tracefs import EventFormat, FieldFormat, read_format
from ..errors import UsageError
from ..options import Option
from ..output import Column, Renderer, printable
from ..output import Field as Cell
from ..tool import Source, Tool, require_privileges

__all__ = ["Trace", "Probe", "parse_probe", "parse_filter", "compile_program", "message"]

EXAMPLES = """\
  tcpscope trace 't:sock:inet_sock_set_state'          # every field of every state change
  tcpscope trace 't:tcp:tcp_retransmit_skb (args->dport == 443) "%s:%d", args->daddr, args->dport'
  tcpscope trace -M 10 -j 't:skb:kfree_skb'            # ten drops, as JSON lines
  tcpscope trace 't:sock:inet_sock_set_state (args->newstate == 7)' 't:tcp:tcp_receive_reset'"""
SUMMARY = "print any tracepoint's fields, with an in-kernel filter and a format (trace)"
DESCRIPTION = """\
Print events of any tracepoint (bcc's trace), e.g.

  tcpscope trace 't:sock:inet_sock_set_state "%llx: %d -> %d", args->skaddr,
                  args->oldstate, args->newstate'

PROBE is t:CATEGORY:EVENT, then an optional filter in parentheses, evaluated in
the kernel (args->FIELD compared with numbers: == != < <= > >=, &&, ||, !, and
args->FIELD & MASK; numbers up to 64 bits, or a name the format file defines,
e.g. args->newstate == TCP_CLOSE; a string field == or != "a string"), then an
optional "FORMAT" and its arguments (args->FIELD). Conversions: %d %i %u %x %X
%o %c %s %p, with flags, width and precision (at most 256) and the C length
modifiers (%llx, %hu, ...). %s prints
a field as the kernel's print format would: a string, an address (IPv4, IPv6,
sockaddr), the symbolic name of a value (TCP states, drop reasons), or the
string a char * field points to (t:syscalls:sys_enter_openat "%s",
args->filename). With no format, every field is printed.
Fields and their layout come from the running kernel (see 'tcpscope tplist -v').
PID/TID/COMM are the task on-CPU when the tracepoint fired. This kernel has no
kprobes: p:, r: and u: probes are not available; use tracepoints."""

# time, pid_tgid, comm, probe index, CPU, bytes of kernel and of user stack (see compile_program)
HEADER = struct.Struct("<QQ16sIIii")
STRING_BYTES = 128  # read from a string pointer printed with %s
STACK_BYTES = 127 * 8  # frames of a stack (-K, -U), as bcc's
KERNEL_SPACE = 1 << 63  # x86-64 and arm64: the upper half is the kernel's (with 4- or 5-level paging)
DYNAMIC_BYTES = 256  # copied past the fixed fields, for __data_loc strings
RING_BYTES = 8 << 20

_CONVERSION = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<prec>\d+))?(?P<len>hh|h|ll|l|z|j|t)?"
                         r"(?P<conv>[diouxXcsp%])")
_TOKEN = re.compile(r"\s*(?:(args->\w+)|(-?(?:0x[0-9a-fA-F]+|\d+))|([A-Za-z_]\w*)|(\"(?:[^\"\\]|\\.)*\")"
                    r"|(==|!=|<=|>=|&&|\|\||[<>!&()]))")
MAX_STRING = 256  # bytes of a string a filter compares (with its NUL), unrolled in the program
_MAX_WIDTH = 256  # of a conversion's width or precision: a message is a line, not megabytes


# --- probes -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    field: FieldFormat


@dataclass(frozen=True)
class Const:
    value: int


Term = Field | Const


@dataclass(frozen=True)
class StringCompare:
    """A char array or __data_loc string field == (or !=) a string."""

    field: FieldFormat
    equal: bool
    value: bytes  # with its NUL


@dataclass(frozen=True)
class Compare:
    left: Term
    op: str  # == != < <= > >= or & (bit test)
    right: Term


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class All:
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Any_:
    nodes: tuple[Node, ...]


Node = Compare | StringCompare | Not | All | Any_


@dataclass(frozen=True)
class Probe:
    text: str
    event: EventFormat
    filter: Node | None
    format: str | None  # Python %-format, converted from the C one
    conversions: tuple[str, ...]  # the C conversion letter of each argument
    args: tuple[FieldFormat, ...]
    strings: tuple[FieldFormat, ...] = ()  # pointer fields printed with %s: the strings they point to

    def layout(self, kernel_stack: bool, user_stack: bool) -> tuple[int, list[int], int, int]:
        """A ring record's size, and where its strings and its kernel and user stacks (0: none) are."""
        offset = HEADER.size + record_bytes(self.event)
        strings = [offset + i * STRING_BYTES for i in range(len(self.strings))]
        offset += len(self.strings) * STRING_BYTES
        kernel = offset if kernel_stack else 0
        offset += STACK_BYTES if kernel_stack else 0
        user = offset if user_stack else 0
        return offset + (STACK_BYTES if user_stack else 0), strings, kernel, user


def _field(event: EventFormat, name: str, text: str) -> FieldFormat:
    for f in event.fields:
        if f.name == name and not f.common:
            return f
    names = ", ".join(f.name for f in event.fields if not f.common)
    raise UsageError(f"{event.name} has no field {name!r} in {text!r} (its fields: {names})")


def _is_string(f: FieldFormat) -> bool:
    """A char array or a __data_loc string: compared with a "string"."""
    if f.data_loc:
        return "char" in f.declaration
    return re.match(r"(const\s+)?(unsigned\s+)?char\s+\w+\[", f.declaration) is not None


def _is_char_pointer(f: FieldFormat) -> bool:
    return f.size == 8 and re.search(r"\bchar\s*\*", f.declaration) is not None


def _is_number(f: FieldFormat) -> bool:
    return not f.data_loc and "[" not in f.declaration and f.size in (1, 2, 4, 8)


def _scalar(f: FieldFormat, event: EventFormat) -> FieldFormat:
    if not _is_number(f):
        raise UsageError(f"field {f.name!r} of {event.name} is not a number: a filter cannot compare it")
    return f


def parse_filter(text: str, event: EventFormat) -> Node:
    """A C-like condition on args->FIELD as a tree (see DESCRIPTION)."""
    tokens: list[str] = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise UsageError(f"cannot read the filter {text!r} at {text[pos:].strip()!r}")
        tokens.append(m.group(m.lastindex or 0))
        pos = m.end()
    at = 0

    def peek() -> str | None:
        return tokens[at] if at < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal at
        token = peek()
        if token is None or (expected and token != expected):
            raise UsageError(f"filter {text!r}: expected {expected or 'more'} "
                             f"{'at ' + repr(token) if token else 'at the end'}")
        at += 1
        return token

    def string_compare(name: str) -> StringCompare:
        f = _field(event, name, text)
        op = take()
        value = take()
        if op not in ("==", "!=") or not value.startswith('"'):
            raise UsageError(f"filter {text!r}: args->{name} is a string: compare it with == or != and "
                             'a "string"')
        raw = _c_string(value, 0)[0].encode() + b"\0"
        if len(raw) > MAX_STRING:
            raise UsageError(f"filter {text!r}: a string compared is at most {MAX_STRING - 1} bytes")
        return StringCompare(f, op == "==", raw)

    def term() -> Term:
        token = take()
        if token.startswith("args->"):
            return Field(_scalar(_field(event, token[6:], text), event))
        if token.lstrip("-")[:1].isdigit():
            return Const(_constant(token, text))
        if token[0].isalpha() or token[0] == "_":
            return Const(_symbol(token, event, text))
        raise UsageError(f"filter {text!r}: expected args->FIELD, a number or a name at {token!r}")

    def primary() -> Node:
        if peek() == "(":
            take("(")
            node = disjunction()
            take(")")
            return node
        token = peek() or ""
        if token.startswith("args->") and _is_string(_field(event, token[6:], text)):
            take()
            return string_compare(token[6:])
        left = term()
        op = peek()
        if op in ("==", "!=", "<", "<=", ">", ">=", "&"):
            take()
            return Compare(left, op, term())
        return Compare(left, "!=", Const(0))

    def negation() -> Node:
        if peek() == "!":
            take("!")
            return Not(negation())
        return primary()

    def conjunction() -> Node:
        nodes = [negation()]
        while peek() == "&&":
            take("&&")
            nodes.append(negation())
        return nodes[0] if len(nodes) == 1 else All(tuple(nodes))

    def disjunction() -> Node:
        nodes = [conjunction()]
        while peek() == "||":
            take("||")
            nodes.append(conjunction())
        return nodes[0] if len(nodes) == 1 else Any_(tuple(nodes))

    node = disjunction()
    if peek() is not None:
        raise UsageError(f"filter {text!r}: unexpected {peek()!r}")
    return node


def _constant(token: str, text: str) -> int:
    """A decimal or hex constant that fits 64 bits, signed or unsigned."""
    digits = token.lstrip("-")
    if len(digits) > 20:  # 0x and 16 hex digits, or 20 decimal ones
        raise UsageError(f"filter {text!r}: {token} does not fit in 64 bits")
    value = int(token, 0)
    if not -(1 << 63) <= value < 1 << 64:
        raise UsageError(f"filter {text!r}: {token} does not fit in 64 bits")
    return value


def _symbol(name: str, event: EventFormat, text: str) -> int:
    """A name from the event's format file (its __print_symbolic tables), e.g. TCP_CLOSE."""
    values = {value for table in event.symbols.values() for value, symbol in table.items()
              if symbol == name and isinstance(value, int)}
    if len(values) == 1:
        return values.pop()
    known = sorted({s for table in event.symbols.values() for s in table.values()})
    hint = f"its names: {', '.join(known)}" if known else "its format file defines no names"
    raise UsageError(f"filter {text!r}: {event.name} has no value called {name!r} ({hint})")


def _closing(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at start (quotes skipped)."""
    depth = 0
    quoted = False
    for i in range(start, len(text)):
        c = text[i]
        if c == '"' and text[i - 1] != "\\":
            quoted = not quoted
        elif not quoted and c == "(":
            depth += 1
        elif not quoted and c == ")":
            depth -= 1
            if depth == 0:
                return i
    raise UsageError(f"unbalanced parentheses in {text!r}")


def _c_string(text: str, start: int) -> tuple[str, int]:
    """The C string literal starting at text[start] (a quote) and the index after it."""
    out, i = [], start + 1
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(escapes.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise UsageError(f"unterminated format string in {text!r}")


def _python_format(c_format: str, text: str, nargs: int) -> tuple[str, tuple[str, ...]]:
    conversions: list[str] = []

    def convert(m: re.Match[str]) -> str:
        conv = m["conv"]
        if conv == "%":
            return "%%"
        if any(len(n) > 3 or int(n) > _MAX_WIDTH for n in (m["width"], m["prec"]) if n):
            raise UsageError(f"format {c_format!r} in {text!r}: a width or precision is at most {_MAX_WIDTH}")
        conversions.append(conv)
        precision = f".{m['prec']}" if m["prec"] else ""
        target = {"d": "d", "i": "d", "u": "d", "o": "o", "x": "x", "X": "X"}.get(conv, "s")
        return f"%{m['flags']}{m['width']}{precision}{target}"

    python = _CONVERSION.sub(convert, c_format.replace("%%", "\0")).replace("\0", "%%")
    if "%" in _CONVERSION.sub("", c_format.replace("%%", "")):
        raise UsageError(f"format {c_format!r} in {text!r} has a conversion tcpscope cannot print")
    if len(conversions) != nargs:
        raise UsageError(f"format {c_format!r} has {len(conversions)} conversions but {nargs} arguments "
                         f"in {text!r}")
    return python, tuple(conversions)


def parse_probe(text: str, formats: Callable[[str], EventFormat] = read_format) -> Probe:
    """t:CATEGORY:EVENT [(FILTER)] ["FORMAT"[, args->FIELD...]]"""
    head = re.match(r"\s*(\w*):", text)
    if head and head[1] in ("p", "r", "u", "k", "kprobe", "kretprobe", "uprobe", "uretprobe"):
        raise UsageError(f"{text!r}: this kernel has no kprobes or uprobes (and tcpscope uses none); "
                         "use a tracepoint, t:CATEGORY:EVENT ('tcpscope tplist' lists them)")
    name = re.match(r"\s*t:([^\s(\"]*)", text)
    if name and any(c in name[1] for c in "*?["):
        raise UsageError(f"{name[1]!r} in {text!r} is a pattern: a probe names one tracepoint "
                         f"(t:CATEGORY:EVENT); 'tcpscope tplist {name[1]!r}' lists those it matches, and "
                         "trace takes several probes")
    m = re.match(r"\s*t:([\w-]+):([\w-]+)", text)
    if not m:
        raise UsageError(f"{text!r} is not a probe: write t:CATEGORY:EVENT, e.g. t:sock:inet_sock_set_state")
    event = formats(f"{m[1]}:{m[2]}")
    rest, pos = text, m.end()
    node = None
    while pos < len(rest) and rest[pos].isspace():
        pos += 1
    if pos < len(rest) and rest[pos] == "(":
        end = _closing(rest, pos)
        node = parse_filter(rest[pos + 1:end], event)
        pos = end + 1
    c_format: str | None = None
    args: tuple[FieldFormat, ...] = ()
    tail = rest[pos:].strip()
    if tail.startswith('"'):
        c_format, after = _c_string(tail, 0)
        tail = tail[after:].strip()
        names = [a.strip() for a in tail.split(",")[1:]] if tail.startswith(",") else []
        if tail and not tail.startswith(","):
            raise UsageError(f"unexpected {tail!r} after the format in {text!r}")
        for argument in names:
            if not re.fullmatch(r"args->\w+", argument):
                raise UsageError(f"argument {argument!r} in {text!r} is not args->FIELD")
        args = tuple(_field(event, argument[6:], text) for argument in names)
    elif tail:
        raise UsageError(f"unexpected {tail!r} in {text!r}: a format is a quoted string")
    python, conversions = _python_format(c_format, text, len(args)) if c_format is not None else (None, ())
    for conv, f in zip(conversions, args):
        if conv in "diouxX" and not _is_number(f):
            raise UsageError(f"%{conv} in {text!r} needs a number, and args->{f.name} is not one "
                             f"({f.declaration}): print it with %s")
    pointed = (f for conv, f in zip(conversions, args) if conv == "s" and _is_char_pointer(f))
    return Probe(text, event, node, python, conversions, args, tuple(dict.fromkeys(pointed)))


# --- the kernel program -------------------------------------------------------------------------

def record_bytes(event: EventFormat) -> int:
    fixed = max((f.offset + f.size for f in event.fields), default=8)
    return fixed + (DYNAMIC_BYTES if any(f.data_loc for f in event.fields) else 0)


@dataclass
class _Record:
    """Where a filter reads the record: the tracepoint's own (R6, the
    context), or its copy in the ring buffer (R7 past the header), which a
    __data_loc string needs: a variable offset into the context is refused."""

    base: int
    offset: int
    size: int  # bytes of the record there
    labels: int = 0

    def fresh(self) -> str:
        self.labels += 1
        return f"L{self.labels}"


def _load_term(asm: Asm, reg: int, term: Term, record: _Record) -> None:
    if isinstance(term, Field):
        asm.load(reg, record.base, record.offset + term.field.offset, term.field.size, term.field.signed)
    else:
        asm.ld_imm64(reg, term.value)


_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<=", "&": "&"}


def _compile(asm: Asm, node: Node, true: str, false: str, record: _Record) -> None:
    if isinstance(node, Not):
        _compile(asm, node.node, false, true, record)
    elif isinstance(node, (All, Any_)):
        for item in node.nodes[:-1]:
            nxt = record.fresh()
            if isinstance(node, All):
                _compile(asm, item, nxt, false, record)
            else:
                _compile(asm, item, true, nxt, record)
            asm.label(nxt)
        _compile(asm, node.nodes[-1], true, false, record)
    elif isinstance(node, StringCompare):
        _compile_string(asm, node, true if node.equal else false, false if node.equal else true, record)
    else:
        left, op, right = node.left, node.op, node.right
        if isinstance(left, Const):
            left, right, op = right, left, _MIRROR[op]
        signed = any(isinstance(t, Field) and t.field.signed for t in (left, right))
        jumps = SIGNED_JUMPS if signed else JUMPS
        _load_term(asm, R1, left, record)
        if isinstance(right, Const) and -(1 << 31) <= right.value < (1 << 31):
            asm.jump(true, jumps[op], R1, imm=right.value)
        else:
            _load_term(asm, R2, right, record)
            asm.jump(true, jumps[op], R1, src=R2)
        asm.jump(false)


def _compile_string(asm: Asm, node: StringCompare, same: str, differs: str, record: _Record) -> None:
    """Byte by byte, the terminating NUL included (a char array the string fills has none)."""
    f, value = node.field, node.value
    if f.data_loc:
        asm.load(R2, record.base, record.offset + f.offset, 4)
        asm.and_imm(R2, 0xFFFF)  # where the string starts in the record; its length is above
        asm.jump(differs, JUMPS[">"], R2, imm=record.size - len(value))
        asm.mov(R3, record.base)
        asm.add(R3, R2)
        at, base = record.offset, R3
    else:
        if len(value) - 1 > f.size:
            asm.jump(differs)
            return
        value = value[:f.size]
        at, base = record.offset + f.offset, record.base
    for i, byte in enumerate(value):
        asm.load(R1, base, at + i, 1)
        asm.jump(differs, JUMPS["!="], R1, imm=byte)
    asm.jump(same)


def _reads_the_copy(node: Node | None) -> bool:
    if isinstance(node, StringCompare):
        return node.field.data_loc
    if isinstance(node, Not):
        return _reads_the_copy(node.node)
    if isinstance(node, (All, Any_)):
        return any(_reads_the_copy(n) for n in node.nodes)
    return False


def compile_program(probe: Probe, index: int, ring_fd: int, lost_fd: int, pid: int | None,
                    tid: int | None = None, kernel_stack: bool = False, user_stack: bool = False) -> bytes:
    """Filter, then copy the record behind a header (HEADER) into the ring
    buffer, with the strings its %s pointers point to and the stacks asked for
    (see Probe.layout)."""
    size, strings, kernel, user = probe.layout(kernel_stack, user_stack)
    asm = Asm()
    asm.mov(R6, R1)  # the tracepoint's record
    if pid or tid:
        asm.call("get_current_pid_tgid")
        if pid:
            asm.mov(R1, R0)
            asm.rsh_imm(R1, 32)
            asm.jump("out", JUMPS["!="], R1, imm=pid)
        if tid:
            asm.mov32(R0, R0)
            asm.jump("out", JUMPS["!="], R0, imm=tid)
    on_copy = _reads_the_copy(probe.filter)
    if probe.filter is not None and not on_copy:
        _compile(asm, probe.filter, "pass", "out", _Record(R6, 0, record_bytes(probe.event)))
    asm.label("pass")
    asm.ld_map(R1, ring_fd)
    asm.mov_imm(R2, size)
    asm.mov_imm(R3, 0)
    asm.call("ringbuf_reserve")
    asm.jump("lost", JUMPS["=="], R0, imm=0)
    asm.mov(R7, R0)
    asm.call("ktime_get_ns")
    asm.store(R7, 0, R0)
    asm.call("get_current_pid_tgid")
    asm.store(R7, 8, R0)
    asm.mov(R1, R7)
    asm.add_imm(R1, 16)
    asm.mov_imm(R2, 16)
    asm.call("get_current_comm")
    asm.store_imm(R7, 32, index)
    asm.call("get_smp_processor_id")
    asm.store(R7, 36, R0, size=4)
    asm.mov(R1, R7)
    asm.add_imm(R1, HEADER.size)
    asm.mov_imm(R2, record_bytes(probe.event))
    asm.mov(R3, R6)
    asm.call("probe_read_kernel")
    if probe.filter is not None and on_copy:  # then the events it does not pass are given back
        _compile(asm, probe.filter, "copied", "discard", _Record(R7, HEADER.size, record_bytes(probe.event)))
        asm.label("discard")
        asm.mov(R1, R7)
        asm.mov_imm(R2, 0)
        asm.call("ringbuf_discard")
        asm.jump("out")
        asm.label("copied")
    for i, (f, offset) in enumerate(zip(probe.strings, strings)):
        asm.load(R3, R6, f.offset, 8)
        asm.mov(R1, R7)
        asm.add_imm(R1, offset)
        asm.mov_imm(R2, STRING_BYTES)
        asm.ld_imm64(R4, KERNEL_SPACE)
        asm.jump(f"kernel{i}", JUMPS[">="], R3, src=R4)
        asm.call("probe_read_user_str")
        asm.jump(f"read{i}")
        asm.label(f"kernel{i}")
        asm.call("probe_read_kernel_str")
        asm.label(f"read{i}")
    for at, offset, flags in ((40, kernel, 0), (44, user, USER_STACK)):
        if offset:
            asm.mov(R1, R6)
            asm.mov(R2, R7)
            asm.add_imm(R2, offset)
            asm.mov_imm(R3, STACK_BYTES)
            asm.mov_imm(R4, flags)
            asm.call("get_stack")
            asm.store(R7, at, R0, size=4)
        else:
            asm.store_imm(R7, at, 0)
    asm.mov(R1, R7)
    asm.mov_imm(R2, 0)
    asm.call("ringbuf_submit")
    asm.jump("out")
    asm.label("lost")  # count it: lost[0] += 1
    asm.store_imm(R10, -4, 0)
    asm.ld_map(R1, lost_fd)
    asm.mov(R2, R10)
    asm.add_imm(R2, -4)
    asm.call("map_lookup_elem")
    asm.jump("out", JUMPS["=="], R0, imm=0)
    asm.mov_imm(R1, 1)
    asm.atomic_add(R0, R1)
    asm.label("out")
    asm.mov_imm(R0, 0)
    asm.exit()
    return asm.assemble()


# --- values as the kernel would print them -------------------------------------------------------

_INTS = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I", (4, True): "i",
         (8, False): "Q", (8, True): "q"}


def field_value(f: FieldFormat, record: bytes) -> Any:
    """A field's raw value: an int, bytes for an array, str for a __data_loc string."""
    if f.data_loc:
        loc = struct.unpack_from("<I", record, f.offset)[0]
        start, length = loc & 0xFFFF, loc >> 16
        return record[start:start + length].split(b"\0", 1)[0].decode("utf-8", "replace")
    if "[" in f.declaration or (f.size, f.signed) not in _INTS:
        return record[f.offset:f.offset + f.size]
    return struct.unpack_from("<" + _INTS[(f.size, f.signed)], record, f.offset)[0]


def _address(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    if len(raw) == 28:  # a struct sockaddr_in6-sized blob holding either family
        family, port = struct.unpack_from("<HH", raw)
        port = socket.ntohs(port)
        if family == socket.AF_INET:
            return f"{socket.inet_ntop(socket.AF_INET, raw[4:8])}:{port}"
        if family == socket.AF_INET6:
            return f"[{socket.inet_ntop(socket.AF_INET6, raw[8:24])}]:{port}"
    return raw.hex()


def field_text(f: FieldFormat, value: Any, event: EventFormat) -> str:
    """A field as the kernel's print format shows it: symbols, addresses, strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        if f.declaration.startswith("char"):
            return value.split(b"\0", 1)[0].decode("utf-8", "replace")
        return _address(value)
    symbols = event.symbols.get(f.name)
    if symbols and value in symbols:
        return symbols[value]
    if "*" in f.declaration:
        return f"{value & (1 << 64) - 1:x}"  # an address, in hex (the kernel hashes %p)
    return str(value)


def _argument(conv: str, f: FieldFormat, value: Any, event: EventFormat) -> Any:
    if conv == "s":
        return field_text(f, value, event)
    if isinstance(value, (bytes, str)):
        return field_text(f, value, event)
    if conv == "c":
        return chr(value & 0xFF)
    if conv == "p":
        return f"0x{value & (1 << 64) - 1:x}"
    if conv in "uxXo" and value < 0:
        return value & (1 << 8 * f.size) - 1
    return value


def message(probe: Probe, record: bytes, strings: dict[str, str] | None = None) -> str:
    """The probe's line for a record; strings: what its %s pointers point to, by field."""
    event = probe.event
    if probe.format is None:
        return " ".join(f"{f.name}={field_text(f, field_value(f, record), event)}"
                        for f in event.fields if not f.common)
    values = tuple((strings or {}).get(f.name, "") if conv == "s" and f in probe.strings
                   else _argument(conv, f, field_value(f, record), event)
                   for conv, f in zip(probe.conversions, probe.args))
    return probe.format % values


# --- the command --------------------------------------------------------------------------------

class Trace(Tool):
    """Any tracepoint, through programs assembled at run time (see compile_program)."""

    name = "trace"
    summary = SUMMARY
    description = DESCRIPTION
    examples = EXAMPLES
    options = ("pid", "tid", "time", "timestamp", "cpu", "json", "kernel_stack", "user_stack", "max_events",
               "duration", "ring_mb", "verbose")
    arguments = (Option((), "probes", 't:CATEGORY:EVENT [(FILTER)] ["FORMAT", args->FIELD...]',
                        metavar="PROBE", nargs="+"),)
    option_help = {"pid": "only events of this process ID (the task on-CPU when the tracepoint fires)",
                   "json": "JSON lines: time, pid, tid, comm, probe, every field, and the formatted message",
                   "verbose": "show libbpf's log"}
    cells: tuple[Cell, ...] = (
        Cell("time", "number", "UNIX time of the event, in seconds", decimals=6),
        Cell("cpu", "number", "the CPU it happened on"),
        Cell("pid", "number", "process ID of the task on-CPU"),
        Cell("tid", "number", "thread ID of the task on-CPU"),
        Cell("comm", "text", "command name of the task on-CPU"),
        Cell("probe", "word", "CATEGORY:EVENT"),
        Cell("fields", "json", "every field of the tracepoint (not the common_ ones), by name"),
        Cell("message", "text", "the probe's format filled in, or every field as NAME=VALUE"),
        Cell("kernel_stack", "json", "with -K: the kernel stack, innermost first"),
        Cell("user_stack", "json", "with -U: the user stack, innermost first"),
    )
    fields = cells

    def __init__(self, config: Config, clock_offset_ns: int | None = None) -> None:
        super().__init__(config, clock_offset_ns)
        if not config.probes:
            raise UsageError("trace needs at least one probe, e.g. 't:tcp:tcp_retransmit_skb'")
        self.probes = [parse_probe(text) for text in config.probes]
        self.tracing = f"{len(self.probes)} tracepoint{'s' if len(self.probes) > 1 else ''}"
        unasked = {name for name, asked in (("kernel_stack", config.kernel_stack),
                                            ("user_stack", config.user_stack)) if not asked}
        self.cells = self.fields = tuple(c for c in Trace.cells if c.name not in unasked)

    def start(self) -> Source:
        require_privileges()
        return TraceEvents(self)

    def columns(self) -> list[Column]:
        func_width = max(16, *(len(p.event.name.split(":")[1]) for p in self.probes))
        stacks = tuple(f.name for f in self.fields[8:])
        columns = [Column("CPU", "cpu", 3)] if self.config.output.cpu else []
        return columns + [
            Column("PID", "pid", 7),
            Column("TID", "tid", 7),
            Column("COMM", "comm", 15, truncate=True, text=printable),
            Column("FUNC", "probe", func_width, text=lambda probe: probe.split(":")[1]),
            Column("-", "message", text=_message_with_stacks(stacks), more=stacks),
        ]

    def row_maker(self, render: Renderer) -> Callable[[Any], tuple[Any, ...]]:
        offset = self.clock_offset_ns
        probes = self.probes
        layouts = [p.layout(self.config.kernel_stack, self.config.user_stack) for p in probes]
        kernel_symbols = KernelSymbols() if self.config.kernel_stack else None
        user_stack = self.config.user_stack
        comm_of, fields_of, message_of, kernel_of, user_of = map(
            render.convert, ("comm", "fields", "message", "kernel_stack", "user_stack"))

        def row(record: bytes) -> tuple[Any, ...]:
            ts, pid_tgid, comm, index, cpu, kernel_bytes, user_bytes = HEADER.unpack_from(record)
            probe = probes[index]
            _size, string_offsets, kernel_at, user_at = layouts[index]
            body = record[HEADER.size:]
            strings = {f.name: _c_text(record[at:at + STRING_BYTES])
                       for f, at in zip(probe.strings, string_offsets)}
            pid = pid_tgid >> 32
            fields = {f.name: _json_value(f, field_value(f, body), probe.event)
                      for f in probe.event.fields if not f.common}
            fields.update(strings)
            stacks = []
            if kernel_symbols is not None:  # (on syscalls:*, 6.1 and 6.12 walk the user registers)
                stacks.append(kernel_of([kernel_symbols(a) for a in _frames(record, kernel_at, kernel_bytes)
                                         if a >= KERNEL_SPACE]))
            if user_stack:
                stacks.append(user_of([user_location(pid, a) for a in _frames(record, user_at, user_bytes)]))
            return ((ts + offset) / 1e9, cpu, pid, pid_tgid & 0xFFFFFFFF, comm_of(_c_text(comm)),
                    probe.event.name, fields_of(fields), message_of(message(probe, body, strings)), *stacks)

        return row


def _message_with_stacks(kinds: tuple[str, ...]) -> Callable[..., str]:
    """The table's last column: the message, then a line per frame of each stack asked for."""

    def text(message: str, *stacks: list[str]) -> str:
        lines = [printable(message)]
        for kind, frames in zip(kinds, stacks):
            if kind == "user_stack" and len(frames) < 2:
                frames = [*frames, "[the user stack ends here: the program may lack frame pointers]"]
            elif not frames:
                frames = ["[no kernel stack]"]
            lines.extend(f"        {printable(frame)}" for frame in frames)
        return "\n".join(lines)

    return text


class TraceEvents(Source):
    """The probes' programs, attached, and the ring buffer they share."""

    def __init__(self, tool: Trace) -> None:
        config = tool.config
        ring_bytes = config.ring_mb << 20 if config.ring_mb else RING_BYTES
        self._ring = RawMap(RawMap.RINGBUF, "trace_events", 0, 0, ring_bytes)
        self._lost = RawMap(RawMap.ARRAY, "trace_lost", 4, 8, 1)
        self._programs: list[RawTracepointProgram] = []
        self._reader: RingBuffer | None = None
        try:
            for index, probe in enumerate(tool.probes):
                code = compile_program(probe, index, self._ring.fd, self._lost.fd, config.filters.pid,
                                       config.filters.tid, config.kernel_stack, config.user_stack)
                self._programs.append(RawTracepointProgram(probe.event.name.split(":")[1], probe.event.id,
                                                           code))
            self._reader = RingBuffer(self._ring.fd, ring_bytes)
        except BaseException:
            self.close()
            raise

    def wait(self, timeout: float) -> None:
        assert self._reader is not None
        self._reader.wait(timeout)

    def drain(self) -> list[Any]:
        assert self._reader is not None
        return self._reader.drain_raw()

    def lost(self) -> int:
        key, value = ctypes.c_uint32(0), ctypes.c_uint64(0)
        libbpf().bpf_map_lookup_elem(self._lost.fd, ctypes.byref(key), ctypes.byref(value))
        return value.value

    def close(self) -> list[str]:
        for program in self._programs:
            program.close()
        if self._reader is not None:
            self._reader.close()
        count = self.lost()
        self._ring.close()
        self._lost.close()
        return [f"WARNING: {count} events were lost: no room in the ring buffer"] if count else []


def _c_text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _frames(record: bytes, at: int, size: int) -> list[int]:
    """The return addresses of a stack that bpf_get_stack() wrote (size < 0: it failed)."""
    count = max(0, min(size, STACK_BYTES)) // 8
    return [a for a in struct.unpack_from(f"<{count}Q", record, at) if a]


def _json_value(f: FieldFormat, value: Any, event: EventFormat) -> Any:
    if isinstance(value, int) and "*" not in f.declaration:
        return value
    return field_text(f, value, event)

