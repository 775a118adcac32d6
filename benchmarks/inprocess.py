"""In-process measurements, through the app's public entry points only.

* the mint: ``trusted_publishing.exchange.exchange(raw_token)``;
* one upload: ``authenticate_upload_token(raw)`` + ``authorize_upload(principal, project)``,
  the app's whole share of an upload request, each token used for two files (a wheel and an
  sdist, as a release uploads them);
* what an index without Trusted Publishing does instead on every upload: Django's
  ``check_password`` against a hash made by ``make_password`` with the default hasher;
* a bare ``jwt.decode`` of the same identity token with an already parsed key (information);
* the statements each sends (``CaptureQueriesContext``) and the rows each adds, by table.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import jwt
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from trusted_publishing.conf import tp_settings
from trusted_publishing.exchange import exchange
from trusted_publishing.uploads import authenticate_upload_token, authorize_upload

from .idp import CountingIdP
from .stats import summarise, time_calls

PROJECT = "widgets"
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


class BenchmarkError(RuntimeError):
    pass


# --- the mint ------------------------------------------------------------------------------------
def mint(tokens: list[str], time_limit: float) -> tuple[dict[str, Any], list[str], list[str]]:
    """``exchange()`` once per identity token. Returns (summary, minted tokens, errors)."""
    minted: list[str] = []
    errors: list[str] = []

    def one(raw: str) -> None:
        try:
            minted.append(exchange(raw).token)
        except Exception as exc:  # counted and reported, never hidden
            errors.append(f"{type(exc).__name__}: {exc}"[:200])

    return summarise(time_calls(one, tokens, time_limit=time_limit)), minted, errors


# --- one upload ----------------------------------------------------------------------------------
def upload_once(raw: str) -> None:
    principal = authenticate_upload_token(raw)
    if principal is None:
        raise BenchmarkError("a freshly minted token was not recognised")
    authorize_upload(principal, PROJECT)


def uploads(minted: list[str], time_limit: float) -> tuple[dict[str, Any], dict[str, Any], list]:
    """Two uploads per minted token (its wheel, then its sdist, as a release sends them).
    Returns (every upload, the first file of each token, errors)."""
    errors: list[str] = []

    def one(raw: str) -> None:
        try:
            upload_once(raw)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])

    samples = time_calls(one, [raw for raw in minted for _file in (1, 2)], time_limit=time_limit)
    return summarise(samples), summarise(samples[0::2]), errors


# --- what an index does without Trusted Publishing ------------------------------------------
def password_check(count: int, time_limit: float) -> dict[str, Any]:
    """Django's check of an ordinary user's password, default hasher (PBKDF2-SHA256)."""
    from django.contrib.auth.hashers import check_password, get_hasher, make_password

    password = "correct horse battery staple"
    encoded = make_password(password)  # the default hasher, its default iterations
    if not check_password(password, encoded):
        raise BenchmarkError("check_password refused the right password")
    out = summarise(
        time_calls(lambda _: check_password(password, encoded), range(count), time_limit=time_limit)
    )
    hasher = get_hasher()
    out["hasher"] = hasher.algorithm
    out["iterations"] = getattr(hasher, "iterations", None)
    return out


# --- information: the least any verifier can do ----------------------------------------------
def bare_decode(idp: CountingIdP, tokens: list[str], time_limit: float) -> dict[str, Any]:
    """Bare PyJWT: the same RS256 identity token, key already parsed, the usual claim checks."""
    key = jwt.PyJWK(idp.issuer.public_jwk())
    audience = tp_settings.AUDIENCE
    options = {"require": ["iss", "aud", "exp", "iat"], "strict_aud": True}

    def decode(token: str) -> object:
        return jwt.decode(
            token,
            key=key,
            algorithms=["RS256"],
            audience=audience,
            issuer=idp.url,
            leeway=tp_settings.JWT_LEEWAY,
            options=options,
        )

    for token in tokens[:20]:
        decode(token)
    return summarise(time_calls(decode, tokens, time_limit=time_limit))


# --- statements and rows ------------------------------------------------------------------------
def _short(sql: str) -> str:
    """Verb and table only: never parameters (no digests or claims in reports)."""
    write = re.match(r"\s*(INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", sql, re.IGNORECASE)
    if write:
        return f"{write.group(1).upper()} {write.group(2)}"
    read = re.search(r"\bFROM\s+\"?(\w+)", sql, re.IGNORECASE)
    if sql.lstrip().upper().startswith("SELECT") and read:
        return f"SELECT {read.group(1)}"
    return " ".join(sql.split()[:2])[:40]


def classify(queries: list[dict[str, Any]]) -> dict[str, Any]:
    sqls = [q["sql"] for q in queries]
    control = [s for s in sqls if s.lstrip().upper().startswith(_CONTROL)]
    return {
        "total": len(sqls),
        "data": len(sqls) - len(control),
        "control": len(control),
        "statements": [_short(s) for s in sqls],
    }


def statements(idp: CountingIdP) -> dict[str, Any]:
    """Statements of one steady-state mint and of the two uploads of its token."""
    [warm] = idp.sign(1)
    upload_once(exchange(warm).token)  # caches and "last used" are warm
    [raw] = idp.sign(1)
    with CaptureQueriesContext(connection) as mint_q:
        token = exchange(raw).token
    with CaptureQueriesContext(connection) as first_q:
        upload_once(token)
    with CaptureQueriesContext(connection) as second_q:
        upload_once(token)
    return {
        "mint": classify(mint_q.captured_queries),
        "upload_first": classify(first_q.captured_queries),
        "upload_second": classify(second_q.captured_queries),
    }


def _app_models() -> list[Any]:
    return list(apps.get_app_config("trusted_publishing").get_models())


def row_counts() -> dict[str, int]:
    return {model._meta.db_table: model.objects.count() for model in _app_models()}


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {t: after[t] - before.get(t, 0) for t in after if after[t] != before.get(t, 0)}


def rows_per_release(idp: CountingIdP) -> dict[str, Any]:
    """Rows each step of a release adds to the app's tables (net, by table)."""
    [raw] = idp.sign(1)
    before = row_counts()
    token = exchange(raw).token
    after_mint = row_counts()
    upload_once(token)
    after_first = row_counts()
    upload_once(token)
    after_second = row_counts()
    out = {
        "mint": _delta(before, after_mint),
        "upload_first": _delta(after_mint, after_first),
        "upload_second": _delta(after_first, after_second),
    }
    total: Counter[str] = Counter()
    for step in out.values():
        total.update(step)
    out["release"] = dict(total)
    return out
