"""tcpscope: TCP observability tools on the kernel's stable tracepoints.

As a library:

    import tcpscope

    with tcpscope.open("life", local_ports=[80, 443]) as tracer:
        for event in tracer.events(duration=10):
            print(event["pid"], event["tx_bytes"])

    for event in tcpscope.trace('t:tcp:tcp_retransmit_skb "%d", args->sport', duration=5):
        print(event["message"])

Errors are exceptions under TcpscopeError, one class per exit status of the
command line, with its one-line messages. See docs/api.md.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .errors import (
    KernelRefused,
    MissingFeature,
    NotPermitted,
    OutputFailed,
    TcpscopeError,
    UsageError,
)

if TYPE_CHECKING:
    from .tracer import Tracer, open, trace

__all__ = ["__version__", "open", "trace", "Tracer", "TOOLS", "TcpscopeError", "UsageError", "NotPermitted",
           "MissingFeature", "KernelRefused", "OutputFailed"]

__version__ = "0.1.0"

# A library says nothing unless its user configures logging (libbpf's log goes to "tcpscope.libbpf").
logging.getLogger("tcpscope").addHandler(logging.NullHandler())

# The tools' names, as open() takes them (tplist and trace included).
TOOLS: tuple[str, ...] = ("life", "states", "connect", "connlat", "accept", "retrans", "synack", "reset",
                          "drop", "probe", "rtt", "cong", "top", "serve",
                          "tplist", "trace")


def __getattr__(name: str) -> Any:
    # The tracer (and libbpf, BTF, the tools) is imported on first use: 'python -m
    # tcpscope' imports this package before main() can turn a Ctrl-C into a quiet exit.
    if name in ("open", "trace", "Tracer"):
        from . import tracer

        return getattr(tracer, name)
    raise AttributeError(f"module 'tcpscope' has no attribute {name!r}")
