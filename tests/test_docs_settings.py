"""docs/settings.md documents exactly the keys of conf.DEFAULTS, each with its exact default."""

from __future__ import annotations

import re
from pathlib import Path

from trusted_publishing import checks
from trusted_publishing.conf import DEFAULTS

DOCS = Path(__file__).resolve().parent.parent / "docs"
HEADING = re.compile(r"^### `([A-Z0-9_]+)`\s*$")
DEFAULT_LINE = re.compile(r"^Default: `(.+?)`")


def documented_settings(text: str) -> dict[str, str | None]:
    """Map each `### `KEY`` heading to the repr on its first `Default:` line (None if absent)."""
    found: dict[str, str | None] = {}
    current: str | None = None
    for line in text.splitlines():
        heading = HEADING.match(line)
        if heading:
            current = heading.group(1)
            assert current not in found, f"{current} is documented twice"
            found[current] = None
            continue
        if line.startswith("#"):
            current = None
            continue
        default = DEFAULT_LINE.match(line)
        if current is not None and default and found[current] is None:
            found[current] = default.group(1)
    return found


def test_parser_reads_headings_and_defaults() -> None:
    # Guards the parser itself, so the real comparison below cannot pass vacuously.
    sample = "### `A`\n\nDefault: `1` (one)\n\n### `B`\n\ntext\n\n## Section\n\nDefault: `9`\n"
    assert documented_settings(sample) == {"A": "1", "B": None}


def test_every_setting_is_documented_with_its_default() -> None:
    documented = documented_settings((DOCS / "settings.md").read_text(encoding="utf-8"))
    missing = sorted(set(DEFAULTS) - set(documented))
    extra = sorted(set(documented) - set(DEFAULTS))
    assert not missing, f"settings missing from docs/settings.md: {missing}"
    assert not extra, f"docs/settings.md documents unknown settings: {extra}"
    wrong = {
        name: (documented[name], repr(DEFAULTS[name]))
        for name in DEFAULTS
        if documented[name] != repr(DEFAULTS[name])
    }
    assert not wrong, f"documented default != repr(DEFAULTS[...]) as (docs, code): {wrong}"


def test_every_system_check_is_documented() -> None:
    source = Path(checks.__file__).read_text(encoding="utf-8")
    ids = set(re.findall(r'id="(trusted_publishing\.[EW]\d{3})"', source))
    assert ids, "no check ids found in trusted_publishing/checks.py"
    text = (DOCS / "settings.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(trusted_publishing\.[EW]\d{3})`", text))
    assert sorted(ids - documented) == [], "system checks missing from docs/settings.md"
    assert sorted(documented - ids) == [], "docs/settings.md lists checks that do not exist"
