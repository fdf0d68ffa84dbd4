"""Values as people read them: addresses, command names, ports, namespaces."""

from __future__ import annotations

import fcntl
import glob
import os
import socket

from .errors import UsageError

__all__ = ["Addresses", "Names", "parse_ports", "parse_pid", "parse_count", "parse_netns", "parse_seconds",
           "parse_milliseconds", "parse_ring_mb", "parse_interval", "parse_image_path", "parse_group_key",
           "parse_listen", "parse_file", "port_bitmap", "DEFAULT_LISTEN"]

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
        port = _whole(item)
        if port is None:
            raise UsageError(f"{item!r} is not a port number (a list looks like 80,443)")
        if not 1 <= port <= 65535:
            raise UsageError(f"port {port} is out of range (1-65535)")
        ports.add(port)
    return frozenset(ports)


DEFAULT_LISTEN = ("127.0.0.1", 10135)


def parse_listen(text: str) -> tuple[str, int]:
    """ADDR:PORT to listen on: '127.0.0.1:10135', '[::1]:10135', ':10135' (every address);
    port 0: any free port."""
    host, sep, port_text = text.rpartition(":")
    port = _whole(port_text)
    if not sep or port is None or not 0 <= port <= 65535:
        raise UsageError(f"{text!r} is not ADDR:PORT (e.g. 127.0.0.1:10135, [::1]:10135 or :10135)")
    host = host.removeprefix("[").removesuffix("]")
    try:
        if host:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        raise UsageError(f"{host!r} is not an IP address (listen on an address, e.g. 127.0.0.1)") from None
    return host, port


def parse_file(text: str) -> str:
    """A file that exists and can be read."""
    if not os.path.isfile(text) or not os.access(text, os.R_OK):
        raise UsageError(f"{text!r} is not a file that can be read")
    return text


def port_bitmap(ports: frozenset[int]) -> bytes:
    """The kernel programs' port set: bit N set for port N."""
    bitmap = bytearray(8192)
    for port in ports:
        bitmap[port >> 3] |= 1 << (port & 7)
    return bytes(bitmap)


def _whole(text: str) -> int | None:
    """A whole number written in ASCII digits (up to 20 of them), or None."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None


def pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


def parse_pid(text: str) -> int:
    pid = _whole(text)
    if pid is None or pid < 1:
        raise UsageError(f"{text!r} is not a process ID")
    if pid > (limit := pid_max()):
        raise UsageError(f"{text} is not a process ID: this system's are at most {limit} (kernel.pid_max)")
    return pid


def parse_ring_mb(text: str) -> int:
    """A ring buffer's size in MiB: a power of two, as the kernel requires."""
    size = _whole(text)
    if size is None or not 1 <= size <= 4096 or size & (size - 1):
        raise UsageError(f"{text!r} is not a ring size: a power of two from 1 to 4096 (MiB)")
    return size


def parse_count(text: str) -> int:
    count = _whole(text)
    if count is None or count < 1:
        raise UsageError(f"{text!r} is not a positive whole number")
    return count


MAX_MILLISECONDS = 1e12  # 31 years: as nanoseconds, it fits the kernel's 64 bits


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def parse_seconds(text: str) -> float:
    value = _number(text)
    if not 0 < value <= MAX_MILLISECONDS / 1e3:  # also false for nan
        raise UsageError(f"{text!r} is not a number of seconds (more than 0, at most 1e9)")
    return value


def parse_interval(text: str) -> float:
    """An interval in seconds: '5', '0.5', or with a unit, '100ms' or '2s'."""
    number, scale = (text[:-2], 1e-3) if text.endswith("ms") else (text.removesuffix("s"), 1.0)
    value = _number(number) * scale
    if not 1e-3 <= value <= MAX_MILLISECONDS / 1e3:  # also false for nan
        raise UsageError(f"{text!r} is not an interval: seconds (e.g. 5 or 0.5) or 100ms, at least 1ms")
    return value


def parse_image_path(text: str) -> str:
    """Where to write an image: a .png, .svg or .pdf file in a directory that exists."""
    if not text.lower().endswith((".png", ".svg", ".pdf")):
        raise UsageError(f"{text!r}: the image's name must end in .png, .svg or .pdf")
    directory = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(directory):
        raise UsageError(f"{text!r}: no directory {directory}")
    return text


GROUP_KEYS = ("raddr", "lport", "pid")


def parse_group_key(text: str) -> str:
    """What --by groups by (each tool takes some of them)."""
    if text not in GROUP_KEYS:
        raise UsageError(f"{text!r}: group by raddr (remote address), lport (local port) or pid (process)")
    return text


def parse_milliseconds(text: str) -> float:
    """A minimum latency: 0 (everything) or more, in milliseconds."""
    value = _number(text)
    if not 0 <= value <= MAX_MILLISECONDS:  # also false for nan
        raise UsageError(f"{text!r} is not a number of milliseconds (0 or more, at most 1e12)")
    return value


def _netns_in_use() -> set[int]:
    """The inodes of the network namespaces that processes are in, or that
    'ip netns' names."""
    inodes = set()
    for path in glob.glob("/proc/[0-9]*/ns/net") + glob.glob("/var/run/netns/*"):
        try:
            inodes.add(os.stat(path).st_ino)
        except OSError:
            pass  # gone meanwhile, or not a namespace
    return inodes


def parse_netns(text: str) -> int:
    """A network namespace inode number, or a namespace file to take it from."""
    inode = _whole(text)
    if inode is not None:
        if inode == 0 or inode >= 1 << 32:
            raise UsageError(f"{text} is not a namespace inode number")
        if inode not in _netns_in_use():
            raise UsageError(f"no network namespace {text} is in use (no process tcpscope can see is in "
                             "it and 'ip netns' has no such name); give its file instead, or find its "
                             "number with 'ls -iL /proc/PID/ns/net'")
        return inode
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
