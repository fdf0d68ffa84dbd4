"""tcpscope trace on real traffic, compared with tcpscope states and with itself unfiltered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from tcpscope.ebpf.object import RawMap, RawTracepointProgram
from tcpscope.ebpf.tracefs import list_events, read_format
from tcpscope.errors import KernelRefused
from tcpscope.tools.trace import compile_program, message, parse_probe, record_bytes
from tests.live.conftest import CONNECT_TO_CLOSED_PORT, Netns, Server, Tracer, run_client


def test_seed_example_matches_states(netns: Netns) -> None:
    srv = Server(netns, expect=10, reply=10, close="second")
    port = srv.port
    scope = f"(args->sport == {port} || args->dport == {port})"
    trace = Tracer("trace", f't:sock:inet_sock_set_state {scope} "%llx: %d -> %d", args->skaddr, '
                   "args->oldstate, args->newstate")
    states = Tracer("states", "-j", "-N", netns.path)
    run_client(netns, port=port, send=10, expect=10)
    srv.wait()
    out, err, rc = trace.stop()
    rows, _ = states.stop_json()
    assert rc == 0 and "lost" not in err
    header, *lines = out.splitlines()
    assert header.split() == ["PID", "TID", "COMM", "FUNC", "-"]
    got = [line.split(None, 4)[4] for line in lines]
    assert all(line.split()[3] == "inet_sock_set_state" for line in lines)
    number = {name.removeprefix("TCP_"): value
              for value, name in read_format("sock:inet_sock_set_state").symbols["newstate"].items()}
    expected = [f"{r['skaddr']}: {number[r['oldstate']]} -> {number[r['newstate']]}" for r in rows]
    assert got == expected
    assert len(got) == 11  # client 5, server 5, the listener's close (it listened before tracing)


def test_filter_in_the_kernel_passes_exactly_the_matching_segments(netns: Netns) -> None:
    """Two probes on tcp:tcp_probe, one filtered in the kernel, one not: the filtered
    one must print exactly the unfiltered events that match, in order."""
    srv = Server(netns, expect=10, reply=3_000_000)
    port = srv.port
    trace = Tracer("trace",
                   f't:tcp:tcp_probe (args->dport == {port} && args->data_len >= 1000) "A %u %u", '
                   "args->snd_una, args->data_len",
                   't:tcp:tcp_probe "B %u %u %u", args->dport, args->snd_una, args->data_len')
    run_client(netns, port=port, send=10, expect=3_000_000)
    srv.wait()
    out, err, rc = trace.stop()
    assert rc == 0 and "lost" not in err
    messages = [line.split(None, 4)[4] for line in out.splitlines()[1:]]
    filtered = [m[2:] for m in messages if m.startswith("A ")]
    unfiltered = []
    for m in messages:
        if m.startswith("B "):
            dport, una, length = (int(x) for x in m[2:].split())
            if dport == port and length >= 1000:
                unfiltered.append(f"{una} {length}")
    assert filtered == unfiltered and len(filtered) > 10


def test_max_events_and_json(netns: Netns) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tcpscope", "trace", "-j", "-M", "2",
                             "t:sock:inet_sock_set_state (args->dport == 9)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("Tracing 1 tracepoint")
    probe = netns.popen([sys.executable, "-c", CONNECT_TO_CLOSED_PORT])
    probe.wait(timeout=10)
    out, _ = proc.communicate(timeout=10)
    events = [json.loads(line) for line in out.splitlines()]
    assert proc.returncode == 0 and len(events) == 2
    assert [(e["fields"]["oldstate"], e["fields"]["newstate"]) for e in events] == [(7, 2), (2, 7)]
    assert {e["pid"] for e in events} == {probe.pid} and events[0]["fields"]["daddr"] == "127.0.0.1"
    assert events[0]["message"].startswith("skaddr=")


def test_every_tracepoint_compiles_and_a_sample_attaches() -> None:
    """Every tracepoint tplist lists parses, renders and compiles; one in 25 (and every
    tcp:, sock: and skb: one) is loaded into the kernel and attached for real. In the
    kernel matrix's emulated guests, only the tcp:, sock: and skb: ones: attaching one
    patches the kernel's code in place, and qemu's emulation once crashed a guest (an int3
    Oops in __schedule) while a scheduler tracepoint's jump was being patched."""
    sample = 0 if os.environ.get("TCPSCOPE_EMULATED") else 25
    ring = RawMap(RawMap.RINGBUF, "test_ring", 0, 0, 1 << 16)
    lost = RawMap(RawMap.ARRAY, "test_lost", 4, 8, 1)
    refused = []
    try:
        names = list_events()
        assert len(names) > 1000
        for i, name in enumerate(names):
            probe = parse_probe(f"t:{name}")
            message(probe, bytes(record_bytes(probe.event) + 64))
            code = compile_program(probe, 0, ring.fd, lost.fd, None)
            if (sample and i % sample == 0) or name.split(":")[0] in ("tcp", "sock", "skb"):
                try:
                    RawTracepointProgram(name.split(":")[1], probe.event.id, code).close()
                except KernelRefused as exc:  # a few tracepoints take no BPF (irq_work_exit)
                    assert "not permitted" in str(exc), exc
                    refused.append(name)
    finally:
        ring.close()
        lost.close()
    assert len(refused) <= 3, refused


def test_64_bit_and_named_constants_in_the_kernel(netns: Netns) -> None:
    # Kernel addresses are all in the upper half (0xff11... with 5-level paging, as qemu's
    # emulated CPU has): the first filter passes the connect's SYN_SENT, the second nothing.
    scope = "args->dport == 9 && args->newstate == TCP_SYN_SENT"
    event = "t:sock:inet_sock_set_state"
    trace = Tracer("trace", "-j", f'{event} ({scope} && args->skaddr >= 0x8000000000000000) "above %d", '
                   "args->oldstate", f'{event} ({scope} && args->skaddr < 0x8000000000000000) "below"')
    netns.run([sys.executable, "-c", CONNECT_TO_CLOSED_PORT])
    events, err = trace.stop_json()
    assert [e["message"] for e in events] == ["above 7"] and "lost" not in err


OPENER = """
import socket, sys, threading
print(threading.get_native_id(), flush=True)
sys.stdin.readline()
open(sys.argv[1], "w").close()
try:
    socket.create_connection(("127.0.0.1", 9))
except OSError:
    pass
print("done", flush=True)
sys.stdin.readline()  # alive until the events are printed: its user frames are named from its maps
"""


def test_string_pointers_stacks_cpu_and_thread(tmp_path, netns: Netns) -> None:  # noqa: ANN001
    path = str(tmp_path / "opened-by-the-test")
    opener = netns.popen([sys.executable, "-c", OPENER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert opener.stdin is not None and opener.stdout is not None
    tid = opener.stdout.readline().strip()
    trace = Tracer("trace", "-j", "-C", "-K", "-U", "--tid", tid,
                   't:syscalls:sys_enter_openat "%s %d", args->filename, args->flags',
                   't:sock:inet_sock_set_state (args->newstate == TCP_SYN_SENT) "connect"')
    table = Tracer("trace", "-C", "--tid", tid, 't:syscalls:sys_enter_openat "%s", args->filename')
    opener.stdin.write("\n")
    opener.stdin.flush()
    assert opener.stdout.readline().strip() == "done"
    events, err = trace.stop_json()
    text, _, _ = table.stop(settle=0)
    opener.stdin.write("\n")
    opener.stdin.flush()
    assert opener.wait(timeout=10) == 0
    opened = [e for e in events if e["message"].startswith(path)]
    connects = [e for e in events if e["message"] == "connect"]
    assert len(opened) == len(connects) == 1 and "lost" not in err
    assert opened[0]["tid"] == connects[0]["tid"] == int(tid) and opened[0]["fields"]["filename"] == path
    assert all(isinstance(e["cpu"], int) and 0 <= e["cpu"] < 1024 for e in events)
    # connect()'s kernel stack, from the tracepoint down through the system call.
    stack = connects[0]["kernel_stack"]
    assert any(f.startswith("__inet_stream_connect+") for f in stack), stack
    assert any(f.startswith(("do_syscall_64+", "__sys_connect+")) for f in stack), stack
    # Its user stack starts where the program made the system call: in libc.
    assert "libc" in connects[0]["user_stack"][0], connects[0]["user_stack"]
    header, *lines = text.splitlines()
    assert header.split()[:3] == ["CPU", "PID", "TID"]
    assert [line.split()[-1] for line in lines if path in line] == [path]


RENAMES = """
import ctypes, sys
for name in sys.argv[1:]:
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
"""


def test_strings_compared_in_the_kernel(tmp_path) -> None:  # noqa: ANN001
    tag = uuid.uuid4().hex[:6]
    program = tmp_path / f"true-{tag}"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    # A char array (task_rename's newcomm) and a __data_loc string (sched_process_exec's filename).
    trace = Tracer("trace", "-j",
                   f't:task:task_rename (args->newcomm == "t-{tag}") "renamed %s", args->oldcomm',
                   f't:sched:sched_process_exec (args->filename == "{program}") "ran %s", args->filename')
    names = [f"a-{tag}", f"t-{tag}", f"t-{tag}x", f"t-{tag}"]
    subprocess.run([sys.executable, "-c", RENAMES, *names], check=True)
    for path in (str(program), "/bin/true", str(program)):
        subprocess.run([path], check=True)
    events, err = trace.stop_json()
    assert sorted(e["message"] for e in events) == [
        f"ran {program}", f"ran {program}", f"renamed a-{tag}", f"renamed t-{tag}x"], events
    assert "lost" not in err
