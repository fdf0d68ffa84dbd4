"""The tools, by subcommand name."""

from __future__ import annotations

from ..tool import ObjectTool, Tool
from .accept import Accept
from .cong import Cong
from .connect import Connect, Connlat
from .drop import Drop
from .life import Life
from .probe import Probe
from .reset import Reset
from .retrans import Retrans
from .rtt import Rtt
from .serve import Serve
from .states import States
from .synack import Synack
from .top import Top
from .tplist import Tplist
from .trace import Trace

__all__ = ["TOOLS", "OBJECT_TOOLS"]

TOOLS: dict[str, type[Tool]] = {
    t.name: t
    for t in (Life, States, Connect, Connlat, Accept, Retrans, Synack, Reset, Drop, Probe, Rtt, Cong, Top,
              Serve, Tplist, Trace)
}
# The tools with a kernel object of their own (bpf/NAME.bpf.c).
OBJECT_TOOLS: dict[str, type[ObjectTool]] = {n: t for n, t in TOOLS.items() if issubclass(t, ObjectTool)}
