"""Live-test fixtures: a fresh network namespace per test, real servers,
and the real tool run as a subprocess, stopped with SIGINT like a user would."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing

WORKLOAD = str(Path(__file__).with_name("workload.py"))
# A connect() to a port nothing listens on: CLOSE -> SYN_SENT -> CLOSE, refused.
CONNECT_TO_CLOSED_PORT = ("import socket\ntry: socket.create_connection(('127.0.0.1', 9))\n"
                          "except OSError: pass")
PYTHON_COMM = os.path.basename(sys.executable)[:15]  # the workloads' command name
# The running kernel's version, as the tests' own oracle of what it has (the
# tools probe BTF and tracefs instead: the two must agree).
KERNEL: tuple[int, int] = tuple(int(n) for n in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())  # type: ignore[assignment,union-attr]


Test = Callable[..., None]


def refused_before(version: tuple[int, int], tool: str) -> Callable[[Test], Test]:
    """For a test of a tool that needs Linux VERSION: on an older kernel, the
    test asserts instead that the tool refuses, in one line naming VERSION,
    with exit status 4, before loading anything."""

    def decorate(test: Test) -> Test:
        if KERNEL >= version:
            return test

        @functools.wraps(test)
        def refused(*args: Any, **kwargs: Any) -> None:
            proc = subprocess.run([sys.executable, "-m", "tcpscope", tool, "-d", "1"], capture_output=True,
                                  text=True, timeout=60)
            needed = f"needs Linux {version[0]}.{version[1]} or newer"
            assert proc.returncode == 4 and proc.stdout == "", proc.stderr
            assert proc.stderr.count("\n") == 1 and needed in proc.stderr, proc.stderr
            assert os.uname().release in proc.stderr

        return refused

    return decorate


@pytest.fixture(autouse=True)
def _live_prerequisites() -> None:
    if os.geteuid() != 0:
        missing("live tests need root")
    for tool in ("ip", "nginx", "ab", "bpftool"):
        if not shutil.which(tool):
            missing(f"{tool} is not installed (scripts/setup.sh --test installs it)")


# The tracers and observers a test started: any still running when it ends (it
# failed before stopping them) are killed, so that no later test finds their programs.
_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _nothing_left_running() -> Iterator[None]:
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def without_handshake_duplicates(sessions: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """life's sessions less the kernel's duplicate children, and how many there were.
    When two CPUs handle a handshake's last ACK at once (the ACK and the first data, say),
    each builds a socket for the connection; the second finds the first in place and is
    closed at once, straight from SYN_RECV. life reports it, as TcpPassiveOpens counts
    it: no owner seen acting on it, no bytes, and another session's addresses and ports.
    Seen under emulation; each duplicate must match a real session."""
    def key(e: dict[str, Any]) -> tuple[Any, ...]:
        return e["laddr"], e["lport"], e["raddr"], e["rport"]

    duplicate = [e["owner"] != "task" and e["tx_bytes"] == e["rx_bytes"] == 0 for e in sessions]
    real = [e for e, dup in zip(sessions, duplicate) if not dup]
    dups = [e for e, dup in zip(sessions, duplicate) if dup]
    assert {key(e) for e in dups} <= {key(e) for e in real}, dups
    return real, len(dups)


class Netns:
    """A network namespace with loopback up, deleted at the end of the test."""

    def __init__(self) -> None:
        self.name = f"tcpscope-{uuid.uuid4().hex[:10]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.path = f"/var/run/netns/{self.name}"
        self.inode = os.stat(self.path).st_ino
        self.run(["ip", "link", "set", "lo", "up"])

    def cmd(self, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(args), check=True, text=True, capture_output=True, **kw)

    def popen(self, args: list[str], **kw: Any) -> subprocess.Popen[str]:
        # 'ip netns exec' execs the command, so the Popen pid is the workload's pid.
        return subprocess.Popen(self.cmd(args), text=True, **kw)

    def wait_no_sockets(self, port: int, timeout: float = 30) -> None:
        """Until no TCP connection in the namespace but TIME_WAIT ones (which send
        nothing) uses this port, orphans included; a listener may stay."""
        deadline = time.monotonic() + timeout
        while f":{port} " in self.run(["ss", "-tanH", "exclude", "time-wait", "exclude", "listening"]).stdout:
            assert time.monotonic() < deadline, f"sockets on port {port} did not go away"
            time.sleep(0.1)

    def counters(self) -> dict[str, int]:
        """The namespace's TCP MIB counters (/proc/net/snmp and netstat), e.g. TcpActiveOpens."""
        out: dict[str, int] = {}
        for table in ("/proc/net/snmp", "/proc/net/netstat"):
            lines = self.run(["cat", table]).stdout.splitlines()
            for names, values in zip(lines[::2], lines[1::2]):
                prefix, *keys = names.split()
                for key, value in zip(keys, values.split()[1:]):
                    out[prefix.rstrip(":") + key] = int(value)
        return out

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


def _namespace() -> Iterator[Netns]:
    ns = Netns()
    try:
        yield ns
    finally:
        ns.delete()


netns = pytest.fixture(_namespace, name="netns")
netns2 = pytest.fixture(_namespace, name="netns2")  # a second one, for tests that need two


class Server:
    """workload.py server in a namespace."""

    def __init__(self, ns: Netns, **options: Any) -> None:
        args = [sys.executable, WORKLOAD, "server"]
        for key, value in options.items():
            args += [f"--{key}", str(value)]
        self.proc = ns.popen(args, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        assert ready and ready[0] == "ready", ready
        self.port = int(ready[1])
        self.pid = self.proc.pid

    def wait(self) -> None:
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "done"
        assert self.proc.wait(timeout=30) == 0


class Client:
    """workload.py client in a namespace, started but held until go()."""

    def __init__(self, ns: Netns, **options: Any) -> None:
        args = [sys.executable, WORKLOAD, "client", "--wait"]
        for key, value in options.items():
            args += [f"--{key}"] if value is True else [f"--{key}", str(value)]
        self.proc = ns.popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "waiting"
        self.pid = self.proc.pid

    def go(self) -> int:
        # 180 s: 4 MB through 20% loss, retransmits lost too and their timers backing off,
        # took 40 to over 60 s in an emulated guest; seconds on a host.
        out, _ = self.proc.communicate("go\n", timeout=180)
        assert self.proc.returncode == 0 and out.strip() == "done", out
        return self.pid


def run_client(ns: Netns, **options: Any) -> int:
    """Run workload.py client to completion; returns its pid."""
    return Client(ns, **options).go()


class Tracer:
    """'tcpscope TOOL ARGS...' running until stop()."""

    def __init__(self, tool: str, *args: str, stdout: Any = subprocess.PIPE) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tcpscope", tool, *args],
            stdout=stdout, stderr=subprocess.PIPE, text=True,
        )
        _started.append(self.proc)
        self.stderr_lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(20) or self.proc.poll() is not None:
            self.proc.kill()
            raise AssertionError(f"tcpscope {tool} did not start: {''.join(self.stderr_lines)}")

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            if line.startswith("Tracing "):
                self._ready.set()
        self._ready.set()

    def stop(self, sig: int = signal.SIGINT, settle: float = 0.3) -> tuple[str, str, int]:
        time.sleep(settle)  # let the last state changes of the workload happen
        self.proc.send_signal(sig)
        # Not communicate(): it would race the stderr reader thread for lines.
        out = self.proc.stdout.read() if self.proc.stdout else ""
        self.proc.wait(timeout=60)
        self._reader.join(10)
        return out, "".join(self.stderr_lines), self.proc.returncode

    def _bpf_fds(self, kind: str) -> list[dict[str, str]]:
        """What /proc/PID/fdinfo says of this tracer's open BPF links or maps."""
        found = []
        for fd in Path(f"/proc/{self.proc.pid}/fdinfo").iterdir():
            try:
                text = fd.read_text()
            except FileNotFoundError:
                continue  # a file the tracer closed meanwhile (reading kallsyms, tracefs): not BPF's
            info = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
            if f"{kind}_type" in info:
                found.append({k: v.strip() for k, v in info.items()})
        return found

    @staticmethod
    def _bpftool_name(kind: str, ident: str) -> str:
        show = subprocess.run(["bpftool", kind, "show", "id", ident, "-j"], capture_output=True, text=True,
                              check=True)
        return str(json.loads(show.stdout)["name"])

    def attached_programs(self) -> list[str]:
        """The names of the kernel programs this tracer has attached (its BPF links)."""
        return sorted(self._bpftool_name("prog", link["prog_id"]) for link in self._bpf_fds("link"))

    def _maps(self) -> dict[str, dict[str, str]]:
        """The tracer's maps, by name (as the kernel truncates it): their fdinfo."""
        return {self._bpftool_name("map", m["map_id"]): m for m in self._bpf_fds("map")}

    def map_entries(self, name: str) -> int:
        """How many entries the tracer's map of this name holds now."""
        dump = subprocess.run(["bpftool", "map", "dump", "id", self._maps()[name]["map_id"], "-j"],
                              capture_output=True, text=True, check=True)
        return len(json.loads(dump.stdout))

    def map_sizes(self) -> dict[str, int]:
        """The tracer's maps: name -> max_entries."""
        return {name: int(m["max_entries"]) for name, m in self._maps().items()}

    def stop_json(self, **kw: Any) -> tuple[list[dict[str, Any]], str]:
        out, err, rc = self.stop(**kw)
        assert rc == 0, err
        return [json.loads(line) for line in out.splitlines()], err


def reported_skips(err: str) -> int:
    """How many times, a tool said at exit, the kernel skipped its programs (each skip
    may have cost one event)."""
    said = re.search(r"WARNING: the kernel skipped tcpscope's programs (\d+) times", err)
    return int(said[1]) if said else 0


class TracepointObserver:
    """An independent observer of a tracepoint: its own fields, as bpftrace prints them
    (where it is installed: the host) or else (the kernel matrix's guests have none) as
    'tcpscope trace' does, whose program reads the tracepoint's record: either way not
    the code under test, which reads sockets through BTF. condition is in the syntax
    both take (args->sport == 80)."""

    def __init__(self, tracepoint: str, condition: str, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.trace: Tracer | None = None
        if shutil.which("bpftrace"):
            layout, values = " ".join(["%d"] * len(fields)), ", ".join(f"args->{f}" for f in fields)
            program = f'tracepoint:{tracepoint} /{condition}/ {{ printf("{layout}\\n", {values}); }}'
            self.proc = subprocess.Popen(["bpftrace", "-e", program], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
            _started.append(self.proc)
            assert self.proc.stdout is not None
            assert self.proc.stdout.readline().startswith("Attaching")
        else:
            self.trace = Tracer("trace", "-j", f"t:{tracepoint} ({condition})")

    def records(self) -> list[tuple[int, ...]]:
        """Each hit's fields, in order; stops the observer."""
        if self.trace is not None:
            rows, _ = self.trace.stop_json()
            return [tuple(r["fields"][field] for field in self.fields) for r in rows]
        time.sleep(0.5)
        lines = [line.split() for line in self._stop_bpftrace().splitlines()]
        return [tuple(map(int, words)) for words in lines
                if len(words) == len(self.fields) and all(w.isdigit() for w in words)]

    def _stop_bpftrace(self) -> str:
        """SIGINT, and what bpftrace printed. bpftrace 0.17 sometimes misses the signal
        and sleeps on in epoll_wait (about one stop in ten here): the signal is sent
        again until it ends, as a user would press Ctrl-C again."""
        for _ in range(15):
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.communicate(timeout=2)[0]
            except subprocess.TimeoutExpired:
                continue
        raise AssertionError("bpftrace did not end on SIGINT")


NGINX_CONF = """\
user root;
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    log_format conn '$remote_port $request_length $bytes_sent $pid';
    access_log {dir}/access.log conn;
    client_body_temp_path {dir}/tmp;
    keepalive_timeout 0;
    server {{
        listen 127.0.0.1:{port};
        listen [::1]:{port};
        root {dir}/www;
    }}
}}
"""


class Nginx:
    """nginx (master + 2 workers) in a namespace, logging per-connection bytes."""

    def __init__(self, ns: Netns, directory: Path, port: int = 8080, body: int = 3000) -> None:
        self.dir, self.port, self.ns = directory, port, ns
        (directory / "www").mkdir()
        (directory / "www" / "file").write_bytes(b"x" * body)
        (directory / "nginx.conf").write_text(NGINX_CONF.format(dir=directory, port=port))
        self.proc = ns.popen(["nginx", "-c", str(directory / "nginx.conf")])
        deadline = time.monotonic() + 10
        while f":{port} " not in ns.run(["ss", "-ltnH"]).stdout:
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        self.master = self.proc.pid

    def workers(self) -> set[int]:
        children = Path(f"/proc/{self.master}/task/{self.master}/children").read_text().split()
        return {int(pid) for pid in children}

    def log(self) -> list[tuple[int, int, int, int]]:
        """(remote port, request bytes, response bytes, worker pid) per connection."""
        lines = (self.dir / "access.log").read_text().splitlines()
        return [tuple(int(x) for x in line.split()) for line in lines]  # type: ignore[misc]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def nginx(netns: Netns, tmp_path: Path) -> Iterator[Nginx]:
    server = Nginx(netns, tmp_path)
    try:
        yield server
    finally:
        server.stop()
