"""docs/threat-model.md and docs/security.md only name code and tests that exist.

* ``tests/<path>.py::test_name`` (optionally ``[case]``) must name an existing file containing
  ``def test_name``. ``…::test_name`` and ``::test_name`` continue the previous explicit test
  file of the same table (or paragraph); a lone ``[case]`` is another case of the previous test.
  A case must exist: its id quoted in the test file, else among the ids pytest collects
  (``[…]`` stands for "every case").
* ``file.py::name`` names a module under ``trusted_publishing/`` containing ``def name``,
  ``class name`` or ``name =``; for ``Class.method`` every dotted part must be there.
* Any other ``tests/….py`` path must exist.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("docs/threat-model.md", "docs/security.md")

CODE_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
TEST_REF = re.compile(r"(tests/[\w/.-]+\.py)::(\w+)(\[.*\])?")
CONTINUED_REF = re.compile(r"(?:…|\.\.\.)?::(\w+)(\[.*\])?")
CASE_ONLY = re.compile(r"\[(.+)\]")
APP_REF = re.compile(r"(?:trusted_publishing/)?([\w/]+\.py)::([\w.]+)")
TEST_PATH = re.compile(r"tests/[\w/.-]+\.py")
ELLIPSIS_CASES = {"…", "..."}


@dataclass(frozen=True)
class Ref:
    page: str
    line: int
    text: str  # the code span as written
    kind: str  # "test", "app" or "path"
    path: str  # tests/… for tests and paths, trusted_publishing/… for app code
    name: str = ""
    case: str = ""


def blocks(text: str) -> list[list[tuple[int, str]]]:
    """Tables and paragraphs: runs of table rows, or runs of other non-blank lines."""
    result: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        is_row = stripped.startswith("|")
        if not stripped or stripped.startswith("#") or (current and is_row != in_table):
            if current:
                result.append(current)
            current = []
        if stripped and not stripped.startswith("#"):
            current.append((number, line))
            in_table = is_row
    if current:
        result.append(current)
    return result


def references(page: str, text: str) -> tuple[list[Ref], list[str]]:
    """Every reference of ``text`` (a page), and the ones that cannot be resolved."""
    refs: list[Ref] = []
    problems: list[str] = []
    for block in blocks(text):
        test_file = ""  # the previous explicit test file of this table or paragraph
        test_name = ""  # the previous test, for lone "[case]" spans
        for number, line in block:
            for span in CODE_SPAN.findall(line):
                span = span.strip()
                where = f"{page}:{number}: `{span}`"
                if match := TEST_REF.fullmatch(span):
                    test_file, test_name = match.group(1), match.group(2)
                    case = (match.group(3) or "")[1:-1]
                    refs.append(Ref(page, number, span, "test", test_file, test_name, case))
                elif match := CONTINUED_REF.fullmatch(span):
                    if not test_file:
                        problems.append(f"{where} continues no explicit test file")
                        continue
                    test_name = match.group(1)
                    case = (match.group(2) or "")[1:-1]
                    refs.append(Ref(page, number, span, "test", test_file, test_name, case))
                elif match := CASE_ONLY.fullmatch(span):
                    if not test_name:
                        continue  # a bracketed literal, not a case of a test
                    refs.append(
                        Ref(page, number, span, "test", test_file, test_name, match.group(1))
                    )
                elif match := APP_REF.fullmatch(span):
                    path = f"trusted_publishing/{match.group(1)}"
                    refs.append(Ref(page, number, span, "app", path, match.group(2)))
                elif TEST_PATH.fullmatch(span):
                    refs.append(Ref(page, number, span, "path", span))
                elif "::" in span and not re.search(r"[\s<>]", span):
                    problems.append(f"{where} is not a reference this test understands")
    return refs, problems


@cache
def source(path: str) -> str | None:
    file = ROOT / path
    return file.read_text(encoding="utf-8") if file.is_file() else None


def defines(text: str, name: str) -> bool:
    """``text`` defines ``name``: a function, a class or an assignment (annotated or not)."""
    pattern = (
        rf"^[ \t]*(?:async[ \t]+def|def|class)[ \t]+{re.escape(name)}\b"
        rf"|^[ \t]*{re.escape(name)}[ \t]*(?::[^=\n]+)?=(?!=)"
    )
    return re.search(pattern, text, re.MULTILINE) is not None


def defines_test(text: str, name: str) -> bool:
    pattern = rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\("
    return re.search(pattern, text, re.MULTILINE) is not None


def check(ref: Ref) -> str | None:
    """What is wrong with ``ref``, its case aside (None: nothing)."""
    where = f"{ref.page}:{ref.line}: `{ref.text}`"
    text = source(ref.path)
    if text is None:
        return f"{where}: {ref.path} does not exist"
    if ref.kind == "test" and not defines_test(text, ref.name):
        return f"{where}: {ref.path} has no `def {ref.name}`"
    if ref.kind == "app":
        missing = [part for part in ref.name.split(".") if not defines(text, part)]
        if missing:
            return f"{where}: {ref.path} defines no {', '.join(missing)}"
    return None


def quoted(text: str, case: str) -> bool:
    """The case id is a string literal of the test file (a parametrize id, a dict key, a row id
    of a table of cases)."""
    return any(f"{quote}{case}{quote}" in text for quote in ('"', "'"))


def collected_ids(paths: list[str]) -> tuple[dict[tuple[str, str], list[str]], str]:
    """The ids pytest gives the parametrised tests of ``paths``: (file, test) -> ids; and the
    output when collection failed."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    ids: dict[tuple[str, str], list[str]] = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"(tests/[\w/.-]+\.py)::(\w+)\[(.*)\]", line.strip())
        if match:
            ids.setdefault((match.group(1), match.group(2)), []).append(match.group(3))
    failed = "" if result.returncode == 0 else (result.stdout + result.stderr)[-2000:]
    return ids, failed


def is_case_of(case: str, test_id: str) -> bool:
    """``case`` is the test id, or whole dash-separated parts of it (the id of a table row run
    under a parametrised fixture too: ``[alg-none]`` is ``[discovery-alg-none]``)."""
    return re.search(rf"(?:^|-){re.escape(case)}(?:-|$)", test_id) is not None


def page_references() -> tuple[list[Ref], list[str]]:
    refs: list[Ref] = []
    problems: list[str] = []
    for page in PAGES:
        page_refs, page_problems = references(page, (ROOT / page).read_text(encoding="utf-8"))
        refs += page_refs
        problems += page_problems
    return refs, problems


# --- the parser itself ---------------------------------------------------------------------------
SAMPLE = """\
| Attack | Stopped by | Proven by |
|---|---|---|
| a | `verification.py::read_unverified` | `tests/a.py::test_one[x]`, `[y]` |
| b | `views.py::AnyJSONParser.parse` | `…::test_two`, `::test_three[…]`; `tests/b.py` |

| c | d | `…::test_orphan` |

Prose with `[not a case]` and `tests/c.py::test_four`, then `…::test_five`.
"""


def test_the_parser_resolves_continuations_per_table() -> None:
    refs, problems = references("sample.md", SAMPLE)
    found = [(r.kind, r.path, r.name, r.case) for r in refs]
    assert found == [
        ("app", "trusted_publishing/verification.py", "read_unverified", ""),
        ("test", "tests/a.py", "test_one", "x"),
        ("test", "tests/a.py", "test_one", "y"),
        ("app", "trusted_publishing/views.py", "AnyJSONParser.parse", ""),
        ("test", "tests/a.py", "test_two", ""),
        ("test", "tests/a.py", "test_three", "…"),
        ("path", "tests/b.py", "", ""),
        ("test", "tests/c.py", "test_four", ""),
        ("test", "tests/c.py", "test_five", ""),
    ]
    assert problems == ["sample.md:6: `…::test_orphan` continues no explicit test file"]


def test_cases_match_whole_parts_of_ids() -> None:
    assert is_case_of("alg-none", "alg-none")
    assert is_case_of("alg-none", "discovery-alg-none")
    assert is_case_of("1024", "1024-422")
    assert not is_case_of("alg-non", "discovery-alg-none")
    assert not is_case_of("none", "discovery-alg-nonexistent")


def test_definitions_are_recognised() -> None:
    text = "class A:\n    def b(self):\n        pass\nC = 1\nD: int = 2\nif E == 3:\n    pass\n"
    assert all(defines(text, name) for name in ("A", "b", "C", "D"))
    assert not defines(text, "E")
    assert defines_test("def test_x(db):\n", "test_x")
    assert not defines_test("def test_xy(db):\n", "test_x")


# --- the pages -----------------------------------------------------------------------------------
def test_every_reference_can_be_resolved() -> None:
    _refs, problems = page_references()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kind", ["test", "app", "path"])
def test_every_reference_names_something_that_exists(kind: str) -> None:
    refs, _problems = page_references()
    problems = [p for p in (check(r) for r in refs if r.kind == kind) if p]
    assert not problems, "\n".join(problems)


def test_every_case_exists() -> None:
    """A case is quoted in its test file, else pytest collects it (ids built in code)."""
    refs, _problems = page_references()
    cases = [
        r
        for r in refs
        if r.kind == "test" and r.case and r.case not in ELLIPSIS_CASES and check(r) is None
    ]
    unquoted = [r for r in cases if not quoted(source(r.path) or "", r.case)]
    if not unquoted:
        return
    ids, failed = collected_ids(sorted({r.path for r in unquoted}))
    assert not failed, f"could not collect the tests some cases belong to:\n{failed}"
    problems = [
        f"{r.page}:{r.line}: `{r.text}`: {r.path}::{r.name} has no case {r.case!r}"
        for r in unquoted
        if not any(is_case_of(r.case, test_id) for test_id in ids.get((r.path, r.name), []))
    ]
    assert not problems, "\n".join(problems)


def test_the_pages_are_really_read() -> None:
    """A parser that finds nothing would let every page pass."""
    refs, _problems = page_references()
    by_page = {page: [r for r in refs if r.page == page] for page in PAGES}
    threat_model = by_page["docs/threat-model.md"]
    assert sum(r.kind == "test" for r in threat_model) >= 100
    assert sum(r.kind == "app" for r in threat_model) >= 50
    assert sum(r.kind == "app" for r in by_page["docs/security.md"]) >= 10
