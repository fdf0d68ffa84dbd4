"""The docs document every option, every JSON key and every exit status the
code has, and the README's links lead to pages that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tcpscope.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INTERNAL,
    EXIT_KERNEL,
    EXIT_OUTPUT,
    EXIT_PERMISSION,
    EXIT_USAGE,
)
from tcpscope.options import OPTIONS
from tcpscope.tools import TOOLS

ROOT = Path(__file__).parent.parent.parent
README = (ROOT / "README.md").read_text()
OPTIONS_PAGE = (ROOT / "docs" / "options.md").read_text()


@pytest.mark.parametrize("name", OPTIONS)
def test_every_option_is_documented(name: str) -> None:
    for flag in OPTIONS[name].flags:
        assert f"`{flag}" in OPTIONS_PAGE


@pytest.mark.parametrize("tool", TOOLS.values(), ids=lambda t: t.name)
def test_every_json_key_is_documented(tool: type) -> None:
    page = "connect" if tool.name == "connlat" else tool.name
    section = (ROOT / "docs" / f"{page}.md").read_text()
    for field in (*tool.fields, *tool.count_cells):  # events' keys, and -c -j's
        assert f"`{field.name}`" in section, field.name


def test_exit_codes_are_documented() -> None:
    for code in (EXIT_INTERNAL, EXIT_USAGE, EXIT_PERMISSION, EXIT_ENVIRONMENT, EXIT_KERNEL, EXIT_OUTPUT):
        assert f"\n| {code} | " in OPTIONS_PAGE


def test_links_lead_somewhere() -> None:
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)
