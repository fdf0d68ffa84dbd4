"""Recorded kernel records, decoded through the objects' BTF and rendered in
every format, against golden files (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from pathlib import Path
from types import SimpleNamespace as NS
from typing import Any

import pytest

from tcpscope.cli import build_parser
from tcpscope.options import make_config
from tcpscope.tool import object_spec
from tcpscope.tools import OBJECT_TOOLS

FIXTURES = Path(__file__).parent.parent / "fixtures"
CLOCK_OFFSET_NS = 1_795_000_000_000_000_000  # a fixed wall clock for the recorded monotonic times

CASES = {
    "table": [],
    "wide": ["-w"],
    "time": ["-T", "-t"],
    "csv": ["-s"],
    "json": ["-j"],
    "sequence": ["-S"],
}
FLAGS = {"-w": "wide", "-T": "time", "-t": "timestamp", "-s": "csv", "-j": "json", "-S": "sequence"}
# Every output case of every tool that has its options.
GOLDEN = [(tool, case) for tool, cls in OBJECT_TOOLS.items() for case, argv in CASES.items()
          if cls.record is not None and all(FLAGS[flag] in cls.options for flag in argv)]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def records(tool: str) -> tuple[Any, list[Any]]:
    cls = OBJECT_TOOLS[tool]
    spec = object_spec(cls.object_name)
    layout = spec.layout(cls.record)
    raw = (FIXTURES / f"{cls.object_name}.records").read_bytes()
    assert len(raw) % layout.size == 0
    return spec, [layout.codec.unpack_from(raw, off) for off in range(0, len(raw), layout.size)]


def render(tool: str, argv: list[str]) -> str:
    spec, recs = records(tool)
    config = make_config(vars(build_parser().parse_args([tool, *argv])))
    start_ns = recs[0][0] - 1_000_000
    t = OBJECT_TOOLS[tool](config, start_ns, clock_offset_ns=CLOCK_OFFSET_NS, spec=spec)
    renderer = t.renderer()
    row = t.row_maker(renderer)
    return (renderer.header() or "") + "".join(renderer.line(row(r)) for r in recs)


@pytest.mark.parametrize("tool, case", GOLDEN)
def test_golden(tool: str, case: str) -> None:
    got = render(tool, CASES[case])
    path = FIXTURES / "golden" / f"{tool}.{case}"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(got)
    assert got == path.read_text()


def test_recorded_life_sessions_are_what_the_workload_did() -> None:
    """record.py's workload: 100 bytes up, 3000 down, over IPv4 and IPv6."""
    named = [json.loads(line) for line in render("life", ["-j"]).splitlines()]
    pairs = sorted((r["family"], r["tx_bytes"], r["rx_bytes"]) for r in named)
    assert pairs == [(4, 0, 0), (4, 100, 3000), (4, 3000, 100), (6, 100, 3000), (6, 3000, 100)]
    assert {r["raddr"] for r in named} == {"127.0.0.1", "::1"}


def _sock(spec: Any, local: str, remote: str, netns: int = 4026531840) -> bytes:
    family = socket.AF_INET6 if ":" in local else socket.AF_INET
    packed = [socket.inet_pton(family, a).ljust(16, b"\0") for a in (local, remote)]
    return bytes(spec.layout("sock_id").codec.pack(*packed, netns, family))


def _task(spec: Any, pid: int, comm: str) -> bytes:
    return bytes(spec.layout("task_id").codec.pack(pid, comm.encode()[:15]))


# What the kernel's "counts" map could hold: (key, value) per tool, as the map's structs.
COUNTED = {
    "connect": lambda s: [
        (NS(sock=_sock(s, "10.0.0.1", "10.0.0.2"), rport=443), NS(established=3, failed=1)),
        (NS(sock=_sock(s, "::1", "::1"), rport=80), NS(established=0, failed=7)),
        (NS(sock=_sock(s, "10.0.0.1", "10.0.0.3"), rport=443), NS(established=4, failed=0)),
    ],
    "retrans": lambda s: [
        (NS(sock=_sock(s, "10.0.0.1", "10.0.0.2"), lport=40000, rport=443), NS(sent=2, failed=0, segments=5)),
        (NS(sock=_sock(s, "fd00::1", "fd00::2"), lport=8080, rport=51234), NS(sent=9, failed=1, segments=9)),
    ],
    "cong": lambda s: [  # closed flows: an open one's current state runs until now
        (NS(sk=1, since_ns=1), NS(ns=struct.pack("<5Q", 912_000_000, 1_500_000, 0, 42_250_000, 0),
                                  changed_ns=0, changes=7, sock=_sock(s, "10.0.0.1", "10.0.0.2"), lport=443,
                                  rport=50123, state=0, closed=1)),
        (NS(sk=2, since_ns=1), NS(ns=struct.pack("<5Q", 3_000_000_000, 0, 0, 0, 1_200_000_000),
                                  changed_ns=0, changes=2, sock=_sock(s, "fd00::1", "fd00::2"), lport=8080,
                                  rport=40000, state=4, closed=1)),
    ],
    "rtt": lambda s: [
        (NS(raddr=socket.inet_pton(socket.AF_INET6, "fd00::2"), family=socket.AF_INET6, lport=0),
         NS(slots=struct.pack("<32Q", *([0] * 9 + [3, 0, 12, 40] + [0] * 19)), count=55,
            sum_us=150_000)),
        (NS(raddr=socket.inet_pton(socket.AF_INET, "10.0.0.2").ljust(16, b"\0"), family=socket.AF_INET,
            lport=0),
         NS(slots=struct.pack("<32Q", *([1] + [0] * 31)), count=1, sum_us=1)),
    ],
    "top": lambda s: [
        (NS(cookie=7, pid=812), NS(rx_bytes=1_000, tx_bytes=52_000_000, task=_task(s, 812, "iperf3"),
                                   sock=_sock(s, "10.0.0.1", "10.0.0.2"), lport=40000, rport=5201)),
        (NS(cookie=9, pid=77), NS(rx_bytes=300_000, tx_bytes=0, task=_task(s, 77, "nginx: worker process"),
                                  sock=_sock(s, "fd00::1", "fd00::2"), lport=443, rport=51234)),
    ],
    "synack": lambda s: [
        (NS(sock=_sock(s, "0.0.0.0", "10.0.0.9"), lport=80), NS(value=5)),
        (NS(sock=_sock(s, "::", "fd00::9"), lport=443), NS(value=12)),
    ],
}
COUNT_CASES = {"table": [], "csv": ["-s"], "json": ["-j"]}


@pytest.mark.parametrize("case", COUNT_CASES)
@pytest.mark.parametrize("tool", COUNTED)
def test_count_report_golden(tool: str, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.25)  # top's rows carry the time of the report
    cls = OBJECT_TOOLS[tool]
    # cong counts unless -e; rtt and top always
    counting = {"cong": [], "rtt": ["--by", "raddr"], "top": []}.get(tool, ["-c"])
    t = cls(make_config(vars(build_parser().parse_args([tool, *counting, *COUNT_CASES[case]]))))
    rows = t.counted(COUNTED[tool](t.spec))
    renderer = t.renderer(counts=True)
    got = (renderer.header() or "") + "".join(renderer.line(t.count_row_maker(renderer)(row)) for row in rows)
    path = FIXTURES / "golden" / f"{tool}.counts.{case}"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text()
    # The library's counts() rows: the values -c -j prints.
    if case == "json":
        as_dicts = t.dict_renderer(counts=True)
        assert [as_dicts.line(row) for row in rows] == [json.loads(line) for line in got.splitlines()]
