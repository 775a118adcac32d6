"""Session-wide secrets hygiene guard (a pytest plugin).

It records every secret the test session creates — identity tokens signed by
``TestIssuer.sign``, upload tokens minted by ``trusted_publishing.exchange.new_token`` and the
private keys of every ``TestIssuer`` — captures every log record (root logger at DEBUG) and, at
the end of the session, the server log files end-to-end fixtures wrote. If any secret shows up
in any of them the session fails, whatever the individual tests said.

Matching works on fixed-size fragments: each secret is cut into aligned chunks of
``FRAGMENT`` characters and every window of the scanned text is looked up, so a leak of any
``2 * FRAGMENT - 1`` consecutive characters of a secret (a whole token, a truncated one, one PEM
line) is found in time linear in the text, however many secrets were recorded.

It also keeps the counters the security suite prints at the end (hostile tokens tried,
concurrent requests, outage cases ...): call :func:`count` from a test.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

#: Chunk length. 16 characters of base64 are 96 bits: no accidental matches.
FRAGMENT = 16
#: Directories whose files are scanned at session end (server logs of e2e fixtures).
LOG_DIRS_ENV = "TP_SECRETS_GUARD_LOG_DIRS"
DEFAULT_LOG_DIRS = ("test-artifacts/logs",)

_lock = threading.Lock()
_fragments: dict[str, str] = {}  # fragment -> kind of secret it belongs to
_recorded: Counter[str] = Counter()
_leaks: list[str] = []
_extra_log_dirs: list[Path] = []
_records_scanned = 0
_files_scanned = 0
COUNTS: Counter[str] = Counter()


# --- public API for tests ------------------------------------------------------------------
def count(name: str, n: int = 1) -> None:
    """Add ``n`` to a counter printed in the terminal summary (e.g. "hostile tokens tried")."""
    with _lock:
        COUNTS[name] += n


def record_secret(value: str | bytes, kind: str) -> None:
    """Remember a secret (e.g. a token a server process minted and a test received)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    body = _secret_body(value, kind)
    if len(body) < FRAGMENT:
        return
    with _lock:
        _recorded[kind] += 1
        for start in range(0, len(body) - FRAGMENT + 1, FRAGMENT):
            _fragments[body[start : start + FRAGMENT]] = kind


def register_log_dir(path: str | os.PathLike[str]) -> None:
    """Scan every file under ``path`` at session end (server logs, captured client output)."""
    with _lock:
        _extra_log_dirs.append(Path(path))


def find_leaks(text: str) -> list[str]:
    """Kinds of the recorded secrets that ``text`` contains (empty list: clean)."""
    found: list[str] = []
    if len(text) < FRAGMENT or not _fragments:
        return found
    frags = _fragments
    for start in range(len(text) - FRAGMENT + 1):
        kind = frags.get(text[start : start + FRAGMENT])
        if kind is not None:
            found.append(kind)
            break
    return found


def leaks() -> list[str]:
    return list(_leaks)


def forget_leaks(marker: str) -> None:
    """Drop leak reports containing ``marker`` (only for this plugin's own self-test)."""
    with _lock:
        _leaks[:] = [leak for leak in _leaks if marker not in leak]


def _secret_body(value: str, kind: str) -> str:
    """The part of a secret worth matching (skip constant prefixes and public JWT parts)."""
    if kind == "jwt":
        # Header and payload are public claims; the signature is what makes a JWT usable and is
        # unique per token.
        return value.rsplit(".", 1)[-1]
    if kind == "minted token":
        prefix_end = value.find("-") + 1
        return value[prefix_end:]
    if kind == "private key":
        # PEM: the base64 lines, joined (each 64-character line still holds aligned chunks).
        lines = [line for line in value.splitlines() if line and not line.startswith("-----")]
        # Skip the first line: the PKCS#8 header of every RSA key starts the same way.
        return "".join(lines[1:])
    return value


# --- wrapping the secret factories ----------------------------------------------------------
def _install_wrappers() -> None:
    from trusted_publishing import exchange
    from trusted_publishing.testing import TestIssuer

    if getattr(exchange.new_token, "_secrets_guard", False):
        return

    original_new_token = exchange.new_token

    @functools.wraps(original_new_token)
    def new_token() -> str:
        token = original_new_token()
        record_secret(token, "minted token")
        return token

    new_token._secrets_guard = True  # type: ignore[attr-defined]
    exchange.new_token = new_token

    original_sign = TestIssuer.sign

    @functools.wraps(original_sign)
    def sign(self: TestIssuer, *args: Any, **kwargs: Any) -> str:
        token = original_sign(self, *args, **kwargs)
        record_secret(token, "jwt")
        return token

    TestIssuer.sign = sign  # type: ignore[method-assign]

    def _record_key(issuer: TestIssuer) -> None:
        record_secret(issuer.private_pem().decode(), "private key")
        # The private exponent in JWK form (base64url), should anything export it that way.
        from jwt.algorithms import RSAAlgorithm

        jwk = RSAAlgorithm.to_jwk(issuer.private_key, as_dict=True)
        record_secret(str(jwk["d"]), "private key")

    original_init = TestIssuer.__init__

    @functools.wraps(original_init)
    def __init__(self: TestIssuer, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        _record_key(self)

    TestIssuer.__init__ = __init__  # type: ignore[method-assign]

    original_rotate = TestIssuer.rotate

    @functools.wraps(original_rotate)
    def rotate(self: TestIssuer, *args: Any, **kwargs: Any) -> None:
        original_rotate(self, *args, **kwargs)
        _record_key(self)

    TestIssuer.rotate = rotate  # type: ignore[method-assign]


# --- capturing logs -------------------------------------------------------------------------
class _LeakHandler(logging.Handler):
    """Checks every log record, message and traceback alike, when it is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        global _records_scanned
        try:
            text = record.getMessage()
        except Exception:  # a broken log call is not our business here
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        kinds = find_leaks(text)
        with _lock:
            _records_scanned += 1
            if kinds:
                _leaks.append(
                    f"log record {record.name}:{record.lineno} ({record.levelname}) contains a "
                    f"{kinds[0]}"
                )


_handler = _LeakHandler(level=logging.DEBUG)


def _attach_handler() -> None:
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)
    root.setLevel(logging.DEBUG)


def _scan_files(rootdir: Path) -> None:
    global _files_scanned
    dirs = [rootdir / d for d in DEFAULT_LOG_DIRS]
    dirs += [Path(p) for p in os.environ.get(LOG_DIRS_ENV, "").split(os.pathsep) if p]
    dirs += _extra_log_dirs
    seen: set[Path] = set()
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            if not path.is_file() or path in seen:
                continue
            seen.add(path)
            try:
                text = path.read_bytes()[: 64 * 1024 * 1024].decode("utf-8", "replace")
            except OSError:
                continue
            _files_scanned += 1
            kinds = find_leaks(text)
            if kinds:
                _leaks.append(f"file {path} contains a {kinds[0]}")


# --- pytest hooks ----------------------------------------------------------------------------
def pytest_sessionstart(session: pytest.Session) -> None:
    _install_wrappers()
    _attach_handler()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Something (Django's logging setup, a test) may have reset the root logger.
    _attach_handler()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _scan_files(Path(str(session.config.rootpath)))
    if _leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    tr = terminalreporter
    tr.section("trusted-publishing security summary")
    if COUNTS:
        tr.write_line(
            "counts: " + ", ".join(f"{name}: {value}" for name, value in sorted(COUNTS.items()))
        )
    recorded = ", ".join(f"{value} {kind}(s)" for kind, value in sorted(_recorded.items()))
    tr.write_line(
        f"secrets guard: recorded {recorded or 'no secrets'}; scanned {_records_scanned} log "
        f"record(s) and {_files_scanned} log file(s)"
    )
    if _leaks:
        tr.write_line(f"SECRETS LEAKED ({len(_leaks)}):", red=True, bold=True)
        for leak in _leaks[:50]:
            tr.write_line(f"  {leak}", red=True)
    else:
        tr.write_line("secrets guard: no secret found in logs", green=True)
