"""Record layouts and constants come from the committed objects' BTF; bpftool,
an independent BTF reader, must agree with ours."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tcpscope.ebpf.btf import Btf, read_elf
from tcpscope.errors import TcpscopeError
from tcpscope.tool import object_spec
from tcpscope.tools import OBJECT_TOOLS

OBJECTS = sorted({t.object_name for t in OBJECT_TOOLS.values()})


def bpftool_struct(path: str, name: str) -> dict[str, int]:
    """Member byte offsets of a struct, as 'bpftool btf dump' prints them."""
    if not shutil.which("bpftool"):
        pytest.skip("bpftool is not installed")
    dump = subprocess.run(["bpftool", "btf", "dump", "file", path], capture_output=True, text=True,
                          check=True).stdout
    block = re.search(rf"STRUCT '{name}' size=\d+ vlen=\d+\n((?:\t.*\n)+)", dump)
    assert block, name
    return {m[0]: int(m[1]) // 8 for m in re.findall(r"'(\w+)' type_id=\d+ bits_offset=(\d+)", block[1])}


@pytest.mark.parametrize("tool", OBJECT_TOOLS.values(), ids=lambda t: t.name)
def test_event_and_count_layouts_match_bpftool(tool: type) -> None:
    spec = object_spec(tool.object_name)
    for struct_name in filter(None, (tool.record, *tool.count_map)):  # events, -c's map
        layout = spec.layout(struct_name)
        assert layout.offsets == bpftool_struct(spec.path, struct_name), struct_name
        assert layout.codec.size == layout.size


@pytest.mark.parametrize("name", OBJECTS)
def test_constants_and_counters_are_found(name: str) -> None:
    spec = object_spec(name)
    rodata = spec.variables(".rodata")
    assert rodata["filter_lports"][1] == rodata["filter_rports"][1] == 8192
    assert rodata["filter_pid"][1] == 4 and rodata["wakeup_bytes"][1] == 8
    offsets = sorted(rodata.values())
    for (off, size), (next_off, _) in zip(offsets, offsets[1:]):
        assert off + size <= next_off  # no two constants overlap
    counters = spec.layout("counters")
    assert counters.fields == ("lost", "storage_failed", "preexisting", "map_full")
    assert spec.variables(".bss")["counters"][1] == counters.size


@pytest.mark.parametrize("name", OBJECTS)
def test_enums_and_attach_points(name: str) -> None:
    spec = object_spec(name)
    assert spec.btf.enum("tcp_state")["TCP_ESTABLISHED"] == 1
    assert spec.btf.enum("tcp_state")["TCP_NEW_SYN_RECV"] == 12
    assert set(spec.btf.enum("owner_kind")) == {"OWNER_UNKNOWN", "OWNER_TASK", "OWNER_LISTENER"}
    # Every object follows sockets' owners; some also trace their own tracepoint.
    own = {"retrans": ["tp_btf/tcp_retransmit_skb"], "synack": ["tp_btf/tcp_retransmit_synack"],
           "probe": ["tp_btf/tcp_probe"], "cong": ["tp_btf/tcp_cong_state_set"],
           "rtt": ["tp_btf/tcp_probe"], "top": ["tp_btf/sock_recv_length", "tp_btf/sock_send_length"],
               "serve": ["tp_btf/kfree_skb", "tp_btf/tcp_probe", "tp_btf/tcp_receive_reset",
                         "tp_btf/tcp_retransmit_skb", "tp_btf/tcp_retransmit_synack",
                         "tp_btf/tcp_send_reset"],
           "reset": ["tp_btf/tcp_receive_reset", "tp_btf/tcp_send_reset"], "drop": ["tp_btf/kfree_skb"],
           "accept": [f"tracepoint/syscalls/sys_{end}_{call}" for end in ("enter", "exit")
                      for call in ("accept", "accept4")]}
    own_points = own.get(name, [])
    common = ["tp_btf/inet_sock_set_state", "tp_btf/tcp_rcv_space_adjust", "tp_btf/tcp_destroy_sock"]
    assert spec.attach_points == sorted([*common, *own_points])


def test_rodata_encoding_is_checked() -> None:
    spec = object_spec("life")
    assert spec.rodata({"filter_pid": 7})["filter_pid"] == b"\x07\x00\x00\x00"
    with pytest.raises(KeyError):
        spec.rodata({"no_such_constant": 1})
    with pytest.raises(ValueError):
        spec.rodata({"filter_lports": b"\x00"})


def test_not_btf_or_elf() -> None:
    with pytest.raises(ValueError):
        Btf(b"\x00" * 32)
    with pytest.raises(ValueError):
        read_elf(b"not an object")


def test_the_names_python_uses_are_the_objects() -> None:
    """Programs left out and maps resized by name: each tool's names exist in its object,
    and an unknown one is an error, never silently ignored."""
    for tool in OBJECT_TOOLS.values():
        spec = object_spec(tool.object_name)
        spec.check_names(programs=tool.skip_programs + tool.owner_programs,
                         maps=(*tool.unused_maps, "events", "spill", "socks", "listener_owners"))
    with pytest.raises(TcpscopeError, match="life.bpf.o has no program life_nope"):
        object_spec("life").check_names(programs=("life_nope",))
