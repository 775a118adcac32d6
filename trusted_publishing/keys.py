"""Issuer signing keys: discovery, fetching and caching.

Rules that keep an unauthenticated endpoint from being turned against us or the issuer:

* keys are only ever fetched for an issuer already in the allowlist (callers look it up first);
* the discovery URL is derived from the configured issuer URL, never from the token;
* https only (loopback http when explicitly allowed), no redirects, timeouts, a size cap, and
  the discovery document's ``issuer`` must equal the configured URL;
* key sets live in the shared cache so all workers share one copy, and keys are parsed with
  ``PyJWK`` from that copy on every use (no process-local state);
* an unknown ``kid`` triggers at most one refetch per cooldown per issuer, by one worker at a
  time (others wait briefly for its result);
* a failed fetch never discards keys we already have, so valid tokens keep working during an
  issuer outage.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from .cache import cache_key, get_cache
from .conf import tp_settings
from .errors import IssuerUnavailable

logger = logging.getLogger("trusted_publishing.keys")

_LOOPBACK_NAMES = {"localhost"}
_POLL_INTERVAL = 0.05


class UnknownKey(Exception):
    """The issuer publishes no key with the token's ``kid``."""


def _cache_key(kind: str, issuer_url: str) -> str:
    return cache_key(f"jwks-{kind}", issuer_url)


# --- URL policy ---------------------------------------------------------------------------
def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_fetch_url(url: str) -> None:
    """Raise IssuerUnavailable unless ``url`` may be fetched (https; loopback http if allowed)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise IssuerUnavailable("key URL has no host")
    if parts.scheme == "https":
        pass
    elif (
        parts.scheme == "http"
        and tp_settings.ALLOW_INSECURE_LOOPBACK_ISSUERS
        and _is_loopback(host)
    ):
        pass
    else:
        raise IssuerUnavailable(
            f"refusing to fetch keys over {parts.scheme or 'no scheme'}: issuers must use https"
        )
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return
    # Cloud metadata endpoints are never an issuer.
    if addr.is_link_local or addr.is_multicast or addr.is_unspecified:
        raise IssuerUnavailable("refusing to fetch keys from a link-local or unspecified address")


def _get_json(url: str) -> dict[str, Any]:
    check_fetch_url(url)
    timeout = float(tp_settings.JWKS_FETCH_TIMEOUT)
    limit = int(tp_settings.JWKS_MAX_BYTES)
    session = requests.Session()
    session.trust_env = False  # no proxies or CA overrides from the environment
    started = time.monotonic()
    try:
        with session.get(
            url,
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,
            verify=tp_settings.JWKS_CA_BUNDLE or True,
            headers={"Accept": "application/json"},
        ) as response:
            if 300 <= response.status_code < 400:
                raise IssuerUnavailable(f"{url} answered with a redirect, which is not followed")
            if response.status_code != 200:
                raise IssuerUnavailable(f"{url} answered HTTP {response.status_code}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise IssuerUnavailable(f"{url} sent more than {limit} bytes")
            body = bytearray()
            # read1 returns whatever has arrived (iter_content would block until a whole chunk
            # or the end of the body is in, so a slow drip could hold a worker for minutes).
            read1 = getattr(response.raw, "read1", None)
            chunks = (
                iter(lambda: read1(16384, decode_content=True), b"")
                if read1 is not None
                else response.iter_content(chunk_size=1024)
            )
            for chunk in chunks:
                body.extend(chunk)
                if len(body) > limit:
                    raise IssuerUnavailable(f"{url} sent more than {limit} bytes")
                # The read timeout is per chunk; bound the whole transfer too (slow drip).
                if time.monotonic() - started > 2 * timeout:
                    raise IssuerUnavailable(f"{url} was too slow")
    except requests.RequestException as exc:
        raise IssuerUnavailable(f"could not fetch {url}: {type(exc).__name__}") from None
    finally:
        session.close()
    try:
        document = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError):
        raise IssuerUnavailable(f"{url} did not return JSON") from None
    if not isinstance(document, dict):
        raise IssuerUnavailable(f"{url} did not return a JSON object")
    return document


def parse_jwks(document: Any) -> dict[str, dict[str, Any]]:
    """Map ``kid`` to JWK for the usable signing keys of a JWKS document."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise IssuerUnavailable("JWKS document has no 'keys' list")
    keys: dict[str, dict[str, Any]] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        if "d" in jwk:  # never accept private key material as a verification key
            continue
        keys[kid] = jwk
    return keys


def fetch_issuer_keys(issuer_url: str) -> dict[str, dict[str, Any]]:
    """Fetch the JWKS of ``issuer_url`` through OIDC discovery. Raises IssuerUnavailable."""
    discovery_url = issuer_url.rstrip("/") + "/.well-known/openid-configuration"
    config = _get_json(discovery_url)
    if config.get("issuer") != issuer_url:
        raise IssuerUnavailable(
            "discovery document names a different issuer than the one configured"
        )
    jwks_uri = config.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise IssuerUnavailable("discovery document has no jwks_uri")
    keys = parse_jwks(_get_json(jwks_uri))
    if not keys:
        raise IssuerUnavailable("issuer published no usable signing keys")
    return keys


def _to_pyjwk(kid: str, jwk: dict[str, Any]) -> PyJWK:
    try:
        return PyJWK(jwk)
    except (PyJWKError, ValueError, TypeError, KeyError):
        raise UnknownKey(kid) from None


# --- cache and refresh --------------------------------------------------------------------
def _static_keys(issuer: Any) -> dict[str, dict[str, Any]]:
    try:
        return parse_jwks(issuer.static_jwks)
    except IssuerUnavailable:
        return {}


def _cached_keyset(issuer_url: str) -> dict[str, Any] | None:
    return get_cache().get(_cache_key("set", issuer_url))


def _store_keyset(issuer_url: str, keys: dict[str, dict[str, Any]]) -> None:
    # No expiry: old keys stay usable through outages; JWKS_MAX_AGE drives refreshes instead.
    get_cache().set(_cache_key("set", issuer_url), {"keys": keys, "fetched_at": time.time()}, None)


def _refresh(issuer_url: str) -> dict[str, Any] | None:
    """Refetch keys unless another worker did within the cooldown. Returns the newest keyset."""
    cache = get_cache()
    cooldown = int(tp_settings.JWKS_REFRESH_COOLDOWN)
    gate = _cache_key("gate", issuer_url)
    # cache.add is atomic across workers (Redis SET NX, memcached add, locmem lock): one winner.
    if not cache.add(gate, "fetching", cooldown):
        # Someone fetched recently or is fetching now: wait for an in-flight fetch to finish.
        deadline = time.monotonic() + 2 * float(tp_settings.JWKS_FETCH_TIMEOUT) + 1
        while cache.get(gate) == "fetching" and time.monotonic() < deadline:
            time.sleep(_POLL_INTERVAL)
        return _cached_keyset(issuer_url)
    try:
        keys = fetch_issuer_keys(issuer_url)
    except IssuerUnavailable as exc:
        logger.warning("fetching keys of issuer %s failed: %s", issuer_url, exc)
        cache.set(gate, "failed", cooldown)
        raise
    _store_keyset(issuer_url, keys)
    cache.set(gate, "done", cooldown)
    logger.info("fetched %d key(s) of issuer %s", len(keys), issuer_url)
    return _cached_keyset(issuer_url)


def get_signing_key(issuer: Any, kid: str) -> PyJWK:
    """The verification key ``kid`` of a trusted ``issuer`` (a TrustedIssuer row).

    Raises UnknownKey when the issuer has no such key, IssuerUnavailable when keys could not be
    obtained at all.
    """
    url = issuer.url
    if issuer.key_source == "static":
        keys = _static_keys(issuer)
        if kid not in keys:
            raise UnknownKey(kid)
        return _to_pyjwk(kid, keys[kid])

    keyset = _cached_keyset(url)
    keys: dict[str, dict[str, Any]] = keyset["keys"] if keyset else {}
    stale = keyset is None or time.time() - keyset.get("fetched_at", 0) > tp_settings.JWKS_MAX_AGE
    if kid not in keys or stale:
        try:
            fresh = _refresh(url)
        except IssuerUnavailable:
            if not keys:
                raise
            fresh = None  # keep serving the keys we have
        if fresh is not None:
            keys = fresh["keys"]
        elif not keys:
            raise IssuerUnavailable("issuer keys are not available yet; retry shortly")
    if kid not in keys:
        raise UnknownKey(kid)
    return _to_pyjwk(kid, keys[kid])


def refresh_issuer_keys(issuer: Any) -> list[str]:
    """Operator action: fetch (or validate static) keys now, ignoring the cooldown.

    ``issuer`` is a TrustedIssuer. Returns the key ids found; raises IssuerUnavailable.
    """
    if issuer.key_source == "static":
        keys = parse_jwks(issuer.static_jwks)
        if not keys:
            raise IssuerUnavailable("the static JWKS holds no usable signing keys")
        return sorted(keys)
    keys = fetch_issuer_keys(issuer.url)
    _store_keyset(issuer.url, keys)
    get_cache().set(_cache_key("gate", issuer.url), "done", int(tp_settings.JWKS_REFRESH_COOLDOWN))
    return sorted(keys)


def forget_issuer_keys(issuer_url: str) -> None:
    cache = get_cache()
    cache.delete_many([_cache_key("set", issuer_url), _cache_key("gate", issuer_url)])
