"""The README documents every option and every JSON key the code has."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpscope._errors import EXIT_ENVIRONMENT, EXIT_INTERNAL, EXIT_KERNEL, EXIT_PERMISSION, EXIT_USAGE
from tcpscope._options import OPTIONS
from tcpscope.tools import TOOLS

README = (Path(__file__).parent.parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", OPTIONS)
def test_every_option_is_documented(name: str) -> None:
    for flag in OPTIONS[name].flags:
        assert f"`{flag}" in README


@pytest.mark.parametrize("tool", TOOLS.values(), ids=lambda t: t.name)
def test_every_json_key_is_documented(tool: type) -> None:
    sections = [part for part in README.split("\n## ") if part.startswith("tcpscope ")]
    section = next(part for part in sections if tool.name in part.split("\n")[0].split())
    for field in tool.fields:
        assert f"`{field.name}`" in section, field.name


def test_exit_codes_are_documented() -> None:
    for code in (EXIT_INTERNAL, EXIT_USAGE, EXIT_PERMISSION, EXIT_ENVIRONMENT, EXIT_KERNEL):
        assert f"\n| {code} | " in README
