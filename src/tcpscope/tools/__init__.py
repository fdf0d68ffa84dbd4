"""The tools, by subcommand name."""

from __future__ import annotations

from ..tool import Tool
from .accept import Accept
from .connect import Connect, Connlat
from .drop import Drop
from .life import Life
from .reset import Reset
from .retrans import Retrans
from .states import States
from .synack import Synack

__all__ = ["TOOLS"]

TOOLS: dict[str, type[Tool]] = {
    t.name: t for t in (Life, States, Connect, Connlat, Accept, Retrans, Synack, Reset, Drop)
}
