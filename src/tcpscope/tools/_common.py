"""Columns and fields that the socket tools share."""

from __future__ import annotations

from .._net import AF_INET6, Addresses, Names
from .._output import Column

__all__ = ["OWNER_NAMES", "SocketFields", "address_columns", "owner_columns"]

# enum owner_kind in bpf/common.h, as the JSON "owner" value.
OWNER_NAMES = {"OWNER_UNKNOWN": "unknown", "OWNER_TASK": "task", "OWNER_LISTENER": "listener"}


class SocketFields:
    """Turns the address, owner and family parts of a record into fields."""

    def __init__(self, owner_kinds: dict[str, int]) -> None:
        self.address = Addresses()
        self.name = Names()
        self.owners = {value: OWNER_NAMES[key] for key, value in owner_kinds.items()}
        self.unknown = owner_kinds["OWNER_UNKNOWN"]

    def family(self, family: int) -> int:
        return 6 if family == AF_INET6 else 4


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


def owner_columns(wide: bool) -> list[Column]:
    return [
        Column("PID", "pid", 7 if wide else 5),
        Column("COMM", "comm", 16 if wide else 10, truncate=True),
    ]


