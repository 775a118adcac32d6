"""docs/errors.md lists exactly the codes of errors.ERRORS, with the same status, title and hint."""

from __future__ import annotations

import html
import re
from pathlib import Path

from trusted_publishing.errors import ERRORS

DOCS = Path(__file__).resolve().parent.parent / "docs"
ROW = re.compile(r"^\| `([a-z-]+)` \| (\d{3}) \| (.+?) \| (.+) \|$")


def codes_table(text: str) -> dict[str, tuple[int, str, str]]:
    """Rows of the table in the "## Codes" section: code -> (status, title, hint as plain text)."""
    section = text.split("\n## Codes\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[int, str, str]] = {}
    for line in section.splitlines():
        match = ROW.match(line.strip())
        if match:
            code, status, title, hint = match.groups()
            assert code not in rows, f"{code} is listed twice"
            # The page escapes "<" and ">" so Markdown does not take them for HTML tags.
            rows[code] = (int(status), html.unescape(title), html.unescape(hint))
    return rows


def test_parser_reads_rows() -> None:
    sample = (
        "# Errors\n\n## Codes\n\n| Code | Status | Title | What to do |\n"
        "| --- | --- | --- | --- |\n"
        "| `a-b` | 422 | Title | Send &lt;x&gt; now. |\n\n## Later\n\n| `c` | 400 | T | H |\n"
    )
    assert codes_table(sample) == {"a-b": (422, "Title", "Send <x> now.")}


def test_error_table_matches_code() -> None:
    documented = codes_table((DOCS / "errors.md").read_text(encoding="utf-8"))
    expected = {code.value: (spec.status, spec.title, spec.hint) for code, spec in ERRORS.items()}
    assert sorted(set(expected) - set(documented)) == [], "codes missing from docs/errors.md"
    assert sorted(set(documented) - set(expected)) == [], "docs/errors.md lists unknown codes"
    for code, row in expected.items():
        assert documented[code] == row, f"docs/errors.md row for {code} differs from ERRORS"
