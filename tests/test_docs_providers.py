"""Each provider page documents the claim rules that trusted_publishing/providers/*.py implement:
the required claims, one table row per check, the claims stored with a minted token, and the
claims it ignores (the pinned list of tests/providers/test_<provider>.py, with the reasons)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from trusted_publishing.providers import RULES

DOCS = Path(__file__).resolve().parent.parent / "docs" / "providers"
ROW = re.compile(r"^\| `([a-z_]+)` \|")
NAME = re.compile(r"`([a-z_]+)`")


def paragraph_after(text: str, label: str) -> str:
    """The paragraph that starts with ``label`` (up to the next blank line)."""
    start = text.index(label)
    end = text.find("\n\n", start)
    return text[start : end if end != -1 else len(text)]


def claim_rules_rows(text: str) -> list[str]:
    section = text.split("\n## Claim rules\n", 1)[1].split("\n## ", 1)[0]
    section = section.split("\n### ", 1)[0]
    return [m.group(1) for line in section.splitlines() if (m := ROW.match(line))]


@pytest.mark.parametrize("provider", sorted(RULES))
def test_provider_page_matches_rules(provider: str) -> None:
    rules = RULES[provider]
    text = (DOCS / f"{provider}.md").read_text(encoding="utf-8")
    replay = {"jti"} if rules.requires_jti else set()

    required = NAME.findall(paragraph_after(text, "Required claims:"))
    assert sorted(required) == sorted(set(rules.required_claims) | replay)

    rows = claim_rules_rows(text)
    assert len(rows) == len(set(rows)), f"duplicate rows in {provider}.md"
    assert sorted(rows) == sorted({name for name, _check in rules.checks} | replay)

    stored = NAME.findall(paragraph_after(text, "Stored with each minted token"))
    assert sorted(stored) == sorted(rules.snapshot_claims)


def test_every_provider_has_a_page_in_the_nav() -> None:
    nav = (DOCS.parent.parent / "mkdocs.yml").read_text(encoding="utf-8")
    for provider in RULES:
        assert f"providers/{provider}.md" in nav


IGNORED_ROW = re.compile(r"^\| `([a-z_*]+)` \| (.+) \|$")


def ignored_claims_section(text: str) -> dict[str, str]:
    section = text.split("\n### Claims this index ignores\n", 1)[1].split("\n#", 1)[0]
    rows = (IGNORED_ROW.match(line) for line in section.splitlines())
    return {m.group(1): m.group(2) for m in rows if m}


@pytest.mark.parametrize("provider", sorted(RULES))
def test_provider_page_lists_the_ignored_claims_with_their_reasons(provider: str) -> None:
    """The page's "Claims this index ignores" table is the pinned list of
    tests/providers/test_<provider>.py, claim for claim and reason for reason."""
    pinned = importlib.import_module(f"tests.providers.test_{provider}").IGNORED_CLAIMS
    text = (DOCS / f"{provider}.md").read_text(encoding="utf-8")
    assert ignored_claims_section(text) == pinned
