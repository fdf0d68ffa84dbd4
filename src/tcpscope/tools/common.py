"""What the socket tools share: fields, columns, and decoders for the groups
of a record that name a process or a socket (struct owner_id, task_id and
sock_id in bpf/common.h)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..ebpf.kernel import kernel_enum
from ..ebpf.object import ObjectSpec
from ..net import AF_INET6, Addresses, Names
from ..output import Cell, Column, Field, Group, Renderer
from ..tool import ObjectTool

__all__ = ["SOCKET_OPTIONS", "SocketTool", "endpoint", "ca_state_names", "kilobytes", "identity_cells",
           "identity_decoders", "owner_fields", "csv_columns",
           "cpu_fields", "sock_fields", "port_fields", "flow_fields", "address_columns", "owner_columns",
           "process_ip_columns"]

# The options of the socket tools (see _options.py).
SOCKET_OPTIONS = ("time", "timestamp", "wide", "csv", "json", "pid", "localport", "remoteport", "ipv4",
                  "ipv6", "netns", "duration", "ring_mb", "verbose")

# enum owner_kind in bpf/common.h, as the JSON "owner" value.
OWNER_NAMES = {"OWNER_UNKNOWN": "unknown", "OWNER_TASK": "task", "OWNER_LISTENER": "listener"}


def owner_fields() -> list[Field]:
    return [
        Field("pid", "number", "process ID of the socket's owner; null when no owner was seen", True),
        Field("comm", "text", "command name of the owner; null when no owner was seen", True),
        Field("owner", "word", 'how the owner was learned: "task" (seen acting on the socket), '
              '"listener" (stand-in: the listening socket\'s owner) or "unknown"'),
    ]


def cpu_fields() -> list[Field]:
    return [
        Field("cpu_pid", "number", "process ID of whatever was on-CPU when the event happened (often 0 "
              "in softirq)"),
        Field("cpu_comm", "text", "command name of whatever was on-CPU"),
    ]


def sock_fields() -> list[Field]:
    return [
        Field("family", "number", "4 or 6"),
        Field("laddr", "word", "local address"),
        Field("raddr", "word", "remote address"),
        Field("netns", "number", "inode number of the socket's network namespace"),
    ]


def flow_fields() -> list[Field]:
    """A flow's endpoints, as -c reports them."""
    family, laddr, raddr, netns = sock_fields()
    lport, rport = port_fields()
    return [family, laddr, lport, raddr, rport, netns]


def port_fields() -> list[Field]:
    return [
        Field("lport", "number", "local port (0 before connect() binds one)"),
        Field("rport", "number", "remote port"),
    ]


def address_columns(wide: bool) -> list[Column]:
    """IP LADDR LPORT RADDR RPORT, as bcc's tcplife and tcpstates show them."""
    width = 39 if wide else 15
    ip = [Column("IP", "family", 2)] if wide else []
    return ip + [
        Column("LADDR", "laddr", width),
        Column("LPORT", "lport", 5),
        Column("RADDR", "raddr", width),
        Column("RPORT", "rport", 5),
    ]


def process_ip_columns(wide: bool) -> list[Column]:
    """PID COMM IP, as bcc's tcpconnect and tcpaccept begin their lines."""
    return [
        Column("PID", "pid", 7),
        Column("COMM", "comm", 16 if wide else 12, truncate=True),
        Column("IP", "family", 2),
    ]


def owner_columns(wide: bool) -> list[Column]:
    return [
        Column("PID", "pid", 7 if wide else 5),
        Column("COMM", "comm", 16 if wide else 10, truncate=True),
    ]


def identity_cells() -> tuple[Cell, ...]:
    """The groups of an event that name its socket's owner, the on-CPU task
    and the socket's endpoints (struct owner_id, task_id and sock_id in
    bpf/common.h)."""
    return (Group("owner", tuple(owner_fields())), Group("cpu", tuple(cpu_fields())),
            Group("sock", tuple(sock_fields())))


def identity_decoders(spec: ObjectSpec) -> dict[str, Callable[[bytes], tuple[Any, ...]]]:
    """Raw owner_id, task_id and sock_id bytes -> the values of their fields."""
    kinds = spec.btf.enum("owner_kind")
    owners = {value: OWNER_NAMES[key] for key, value in kinds.items()}
    unknown = kinds["OWNER_UNKNOWN"]
    owner_id, task_id, sock_id = (spec.layout(s).codec.unpack for s in ("owner_id", "task_id", "sock_id"))
    address, name = Addresses(), Names()

    def owner(raw: bytes) -> tuple[Any, ...]:
        pid, kind, comm = owner_id(raw)
        if kind == unknown:
            return None, None, owners[kind]
        return pid, name[comm], owners[kind]

    def task(raw: bytes) -> tuple[Any, ...]:
        pid, comm = task_id(raw)
        return pid, name[comm]

    def sock(raw: bytes) -> tuple[Any, ...]:
        laddr, raddr, netns, family = sock_id(raw)
        return 6 if family == AF_INET6 else 4, address[family, laddr], address[family, raddr], netns

    return {"owner": owner, "cpu": task, "sock": sock}


def ca_state_names(spec: ObjectSpec) -> dict[int, str]:
    """Congestion-control states by value, named as the running kernel names them
    (enum tcp_ca_state in its BTF; the object's copy where it has none):
    "open", "disorder", "cwr", "recovery", "loss"."""
    members = kernel_enum("tcp_ca_state") or spec.btf.enum("tcp_ca_state")
    return {value: name.removeprefix("TCP_CA_").lower() for name, value in members.items()}


def csv_columns(fields: tuple[Field, ...]) -> list[Column]:
    """A CSV column per field, headed by its name in capitals (family: IP); JSON values as JSON."""
    return [Column("IP" if f.name == "family" else f.name.upper(), f.name,
                   csv_text=json.dumps if f.kind == "json" else None) for f in fields]


def kilobytes(n: int) -> str:
    """Bytes as whole KiB, as bcc's tools show them."""
    return str(n // 1024)


def endpoint(address: str, port: int) -> str:
    """ADDR:PORT, with an IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class SocketTool(ObjectTool):
    """A tool whose events end with the identity groups (identity_cells())."""

    def constants(self) -> dict[str, Any]:
        values = super().constants()
        if "count" in self.options:
            values["count_only"] = int(self.counting)
        return values

    def decoders(self) -> dict[str, Callable[[bytes], tuple[Any, ...]]]:
        return identity_decoders(self.spec)

    @staticmethod
    def identity_converters(render: Renderer) -> tuple[Callable[[Any], Any], ...]:
        """The renderer's converters for the owner, cpu and sock groups, in that order."""
        return render.convert("owner"), render.convert("cpu"), render.convert("sock")
