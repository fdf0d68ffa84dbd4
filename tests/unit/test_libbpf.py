"""The libbpf binding's log: messages reach logging whole, however long
(a verifier's log is one message of up to megabytes)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tcpscope.ebpf.libbpf import libbpf


def test_a_long_message_is_logged_whole(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lib = libbpf()
    path = str(tmp_path / ("x" * 250)) + "/" + "y" * 9000 + ".bpf.o"  # longer than any first buffer
    with caplog.at_level(logging.DEBUG, logger="tcpscope.libbpf"):
        assert not lib.bpf_object__open_file(path.encode(), None)
    assert any(path in r.getMessage() for r in caplog.records), [r.getMessage()[:80] for r in caplog.records]
    assert any(path in line for line in lib.recent_log)
