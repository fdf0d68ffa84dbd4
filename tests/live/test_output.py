"""Where the output goes wrong: a reader that goes away ends a tool quietly;
any other write failure is one line and exit status 6; SIGHUP is a stop like
SIGTERM; a signal while the reader lags loses nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcpscope.errors import EXIT_OUTPUT
from tests.live.conftest import CONNECT_TO_CLOSED_PORT, Netns, Server, Tracer, run_client

TOOL = [sys.executable, "-m", "tcpscope"]


@pytest.mark.parametrize(("shell", "error"), [(">/dev/full", "No space left on device"),
                                              (">&-", "Bad file descriptor")])
@pytest.mark.parametrize("tool", [["life", "-d", "1"], ["tplist"]])
def test_write_failure_is_one_line(tool: list[str], shell: str, error: str) -> None:
    proc = subprocess.run(["sh", "-c", f'"$@" {shell}', "sh", *TOOL, *tool], capture_output=True, text=True,
                          timeout=60)
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("Tracing")]
    assert proc.returncode == EXIT_OUTPUT
    assert lines == [f"tcpscope {tool[0]}: cannot write the output: {error}"]


@pytest.mark.parametrize("tool", [["trace", "t:sock:inet_sock_set_state"], ["retrans", "-j"], ["life"]])
def test_a_reader_that_goes_away_ends_the_tool_quietly(tool: list[str]) -> None:
    # 'tcpscope ... | head -1': the header (or nothing) is read, then the pipe closes.
    proc = subprocess.Popen([*TOOL, *tool], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    while not (line := proc.stderr.readline()).startswith("Tracing "):
        assert ": note: " in line  # what this kernel cannot show, said before tracing begins
    if tool[0] != "retrans":
        proc.stdout.readline()
    proc.stdout.close()
    start = time.monotonic()
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - start < 2
    assert proc.stderr.read() == ""


def test_sighup_stops_like_sigterm(netns: Netns) -> None:
    tracer = Tracer("life", "-j", "-N", netns.path)
    srv = Server(netns, count=5)
    run_client(netns, port=srv.port, count=5)
    srv.wait()
    rows, err = tracer.stop_json(sig=signal.SIGHUP)
    assert len(rows) == 10 and "WARNING" not in err


ODD_NAME = """
import ctypes, socket
ctypes.CDLL(None).prctl(15, b"a\\nb\\x1b[2J", 0, 0, 0)  # PR_SET_NAME: a newline and a terminal escape
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname()); s, _ = srv.accept()
c.close(); s.close()
"""


def test_control_bytes_in_names_are_escaped_in_tables(netns: Netns) -> None:
    table = Tracer("life", "-N", netns.path)
    as_json = Tracer("life", "-j", "-N", netns.path)
    netns.run([sys.executable, "-c", ODD_NAME])
    text, _, rc = table.stop()
    rows, _ = as_json.stop_json(settle=0)
    assert rc == 0 and {r["comm"] for r in rows} == {"a\nb\x1b[2J"}
    lines = text.splitlines()  # COMM is cut to 10 characters
    assert len(lines) == 3 and all(line.split()[1] == "a\\x0ab\\x1b" for line in lines[1:]), text


def test_ring_size_is_the_users() -> None:
    default, larger = Tracer("states"), Tracer("states", "--ring-mb", "64")
    try:
        assert default.map_sizes()["events"] == 16 << 20 and larger.map_sizes()["events"] == 64 << 20
    finally:
        default.stop(settle=0)
        larger.stop(settle=0)


LONG_V6 = "fd00:1234:5678:9abc:def0:1234:5678:9abc"
PAIR_V6 = f"""
import socket
srv = socket.socket(socket.AF_INET6); srv.bind(("{LONG_V6}", 0)); srv.listen()
for _ in range(2):
    c = socket.create_connection(srv.getsockname()[:2]); s, _ = srv.accept()
    c.close(); s.close()
"""


def test_ipv6_addresses_fit_their_columns_with_6(netns: Netns) -> None:
    netns.run(["ip", "-6", "addr", "add", f"{LONG_V6}/128", "dev", "lo", "nodad"])
    table = Tracer("life", "-6", "-N", netns.path)
    netns.run([sys.executable, "-c", PAIR_V6])
    text, _, rc = table.stop()
    header, *rows = text.splitlines()
    assert rc == 0 and len(rows) == 4 and all(LONG_V6 in row for row in rows)
    for column in ("LPORT", "RADDR", "RPORT"):  # every row's value starts under its header
        at = header.index(column)
        assert all(row[at - 1] == " " and row[at] != " " for row in rows), text


@pytest.mark.parametrize("moment", ["importing", "loading"])
def test_ctrl_c_while_starting_is_quiet(moment: str) -> None:
    # While Python imports the tools (-X importtime says which module is done), or while
    # the kernel programs load (libbpf is mapped): before 'Tracing', quiet, exit status 0.
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "tcpscope", "life"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    # -X importtime's header: Python runs. Until its exec, the child is a copy of this
    # process, which has libbpf mapped; a signal sent then kills it with nothing said.
    assert proc.stderr.readline().startswith("import time:")
    if moment == "importing":
        while "tcpscope.ebpf.kernel" not in proc.stderr.readline():
            assert proc.poll() is None
    else:
        deadline = time.monotonic() + 30
        while "libbpf.so" not in Path(f"/proc/{proc.pid}/maps").read_text():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    said = [line for line in err.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 0 and said == [], err


def test_trace_columns_fit_long_tracepoint_names(netns: Netns) -> None:
    # tcp_retransmit_synack is 21 characters: FUNC is as wide as the longest probe's name.
    trace = Tracer("trace", 't:sock:inet_sock_set_state (args->dport == 9) "%d", args->newstate',
                   "t:tcp:tcp_retransmit_synack")
    netns.run([sys.executable, "-c", CONNECT_TO_CLOSED_PORT])
    text, _, rc = trace.stop()
    header, *rows = text.splitlines()
    assert rc == 0 and len(rows) == 2
    at = header.index(" -") + 1
    assert [row[at:] for row in rows] == ["2", "7"], text
