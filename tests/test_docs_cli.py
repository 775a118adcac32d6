"""docs/cli.md documents every subcommand and option of `manage.py trusted_publishing`, and no
others."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from trusted_publishing.management.commands.trusted_publishing import Command

DOCS = Path(__file__).resolve().parent.parent / "docs"
SUBCOMMAND_HEADING = re.compile(r"^### `([a-z-]+)`\s*$", re.MULTILINE)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = Command().create_parser("manage.py", "trusted_publishing")
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def documented_sections(text: str) -> dict[str, str]:
    parts = SUBCOMMAND_HEADING.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]; a body ends at the next heading.
    return {
        name: re.split(r"^## ", body, flags=re.MULTILINE)[0]
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def test_every_subcommand_and_option_is_documented() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = documented_sections(text)
    commands = subcommands()
    assert sorted(sections) == sorted(commands), "subcommands in docs/cli.md != the command's"
    for name, parser in commands.items():
        body = sections[name]
        for action in parser._actions:
            if action.dest in {"help", "json"}:
                continue  # --json is documented once, under "Common options"
            if action.option_strings:
                long = [o for o in action.option_strings if o.startswith("--")]
                assert any(f"`{o}" in body for o in long), f"{name}: {long} not documented"
            else:
                assert f"`{action.dest}`" in body, f"{name}: argument {action.dest} missing"
        documented = set(re.findall(r"`(--[a-z-]+)", body))
        known = {o for a in parser._actions for o in a.option_strings}
        assert documented <= known, f"{name}: docs/cli.md names unknown {documented - known}"
    assert "`--json`" in text


def test_every_subcommand_accepts_json() -> None:
    for name, parser in subcommands().items():
        assert "--json" in {o for a in parser._actions for o in a.option_strings}, name
