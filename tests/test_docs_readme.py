"""The README's links and set-up commands point at things that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_links_resolve() -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if "://" not in link]
    assert local, "no relative links found in README.md"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_readme_starts_with_the_demo_then_the_tests() -> None:
    commands = re.findall(r"```bash\n(.*?)\n```", README, flags=re.DOTALL)
    assert commands[:2] == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        assert (ROOT / script).is_file(), script


def test_every_page_in_the_docs_nav_exists() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r":\s+([\w/-]+\.md)\s*$", nav, flags=re.MULTILINE)
    assert pages
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), f"mkdocs.yml nav names missing docs/{page}"
