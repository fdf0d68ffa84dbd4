"""Values as people read them: addresses, command names, ports, namespaces."""

from __future__ import annotations

import fcntl
import os
import socket

from ._errors import UsageError

__all__ = ["Addresses", "Names", "parse_ports", "parse_pid", "parse_count", "parse_netns", "parse_seconds",
           "port_bitmap"]

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6
_NS_GET_NSTYPE = 0xB703  # ioctl on a namespace file: which kind it is
_CLONE_NEWNET = 0x40000000
_CACHE_LIMIT = 1 << 16


class Addresses(dict[tuple[int, bytes], str]):
    """(family, 16-byte kernel address) -> text, cached: a host talks to few peers."""

    def __missing__(self, key: tuple[int, bytes]) -> str:
        family, raw = key
        if family == AF_INET:
            text = socket.inet_ntop(AF_INET, raw[:4])
        elif family == AF_INET6:
            text = socket.inet_ntop(AF_INET6, raw)
        else:
            text = f"family{family}:{raw.hex()}"
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[key] = text
        return text


class Names(dict[bytes, str]):
    """NUL-padded kernel strings (task command names) -> str, cached."""

    def __missing__(self, raw: bytes) -> str:
        text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[raw] = text
        return text


def parse_ports(text: str) -> frozenset[int]:
    """'80,443' -> {80, 443}; every port must be 1-65535."""
    ports = set()
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit():
            raise UsageError(f"{item!r} is not a port number (a list looks like 80,443)")
        port = int(item)
        if not 1 <= port <= 65535:
            raise UsageError(f"port {port} is out of range (1-65535)")
        ports.add(port)
    return frozenset(ports)


def port_bitmap(ports: frozenset[int]) -> bytes:
    """The kernel programs' port set: bit N set for port N."""
    bitmap = bytearray(8192)
    for port in ports:
        bitmap[port >> 3] |= 1 << (port & 7)
    return bytes(bitmap)


def parse_pid(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{text!r} is not a process ID")
    return int(text)


def parse_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{text!r} is not a positive whole number")
    return int(text)


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise UsageError(f"{text!r} is not a positive number of seconds")
    return value


def parse_netns(text: str) -> int:
    """A network namespace inode number, or a namespace file to take it from."""
    if text.isdigit():
        if int(text) == 0 or int(text) >= 1 << 32:
            raise UsageError(f"{text} is not a namespace inode number")
        return int(text)
    try:
        fd = os.open(text, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(
            f"cannot open network namespace {text!r}: {exc.strerror} "
            "(give an inode number, /var/run/netns/NAME or /proc/PID/ns/net)"
        ) from None
    try:
        try:
            kind = fcntl.ioctl(fd, _NS_GET_NSTYPE)
        except OSError:
            kind = 0
        if kind != _CLONE_NEWNET:
            raise UsageError(f"{text!r} is not a network namespace (try /proc/PID/ns/net)")
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)
