"""Issuer signing keys: discovery, fetching and caching.

Rules that keep an unauthenticated endpoint from being turned against us or the issuer:

* keys are only ever fetched for an issuer already in the allowlist (callers look it up first);
* the discovery URL is derived from the configured issuer URL, never from the token, and the
  discovery document's ``jwks_uri`` must name the issuer's own host (and port) or a host
  allowed for that issuer (:data:`KNOWN_JWKS_HOSTS`, ``JWKS_ALLOWED_HOSTS``);
* https only (loopback http when explicitly allowed), no redirects, timeouts, a size cap, and
  the discovery document's ``issuer`` must equal the configured URL;
* never a link-local, multicast, unspecified or cloud-metadata address, however it is spelled
  (``2852039166``, ``0xa9fea9fe``, ``[::ffff:169.254.169.254]``) or whatever a DNS name
  resolves to: every connection resolves the host itself, refuses the host if *any* of its
  addresses is refused, connects only to a vetted address and checks the peer address of the
  connected socket again. Through a proxy (``HTTPS_PROXY``) the proxy resolves and connects, so
  the rule applies to the proxy's own address; the operator restricts egress at the proxy;
* the standard proxy (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) and CA-bundle
  (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE``, ``SSL_CERT_DIR``) variables
  are honoured unless ``JWKS_TRUST_ENV`` is off; ``JWKS_CA_BUNDLE`` wins over them; ``.netrc``
  credentials are never sent;
* key sets live in the shared cache so all workers share one copy, and keys are parsed with
  ``PyJWK`` from that copy on every use (no process-local state);
* an unknown ``kid`` triggers at most one refetch per :data:`NEW_KEY_INTERVAL` (10 s) per
  issuer, by one worker at a time (others wait briefly for its result), so a key the issuer
  publishes is accepted within 10 s while a flood of unknown ``kid``\\ s costs the issuer at most
  one fetch per 10 s; after a *failed* fetch the next one waits ``JWKS_REFRESH_COOLDOWN``;
* a failed fetch never discards keys we already have, so valid tokens keep working during an
  issuer outage.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import re
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from jwt import PyJWK
from jwt.exceptions import PyJWKError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from .cache import cache_key, get_cache
from .conf import tp_settings
from .errors import IssuerUnavailable

logger = logging.getLogger("trusted_publishing.keys")

_LOOPBACK_NAMES = {"localhost"}
_POLL_INTERVAL = 0.05
#: A gate that expired this little too early is waited out by the worker that won it.
_MAX_EARLY_WAIT = 1.5

#: After a successful fetch, the next fetch of an issuer's keys (for an unknown ``kid``) may
#: start this many seconds later at the latest (``JWKS_REFRESH_COOLDOWN`` may make it shorter):
#: a newly published key is accepted within this time, and a flood of unknown ``kid``\ s costs
#: the issuer at most one fetch per this time.
NEW_KEY_INTERVAL = 10

#: Issuers whose ``jwks_uri`` is, by design, on another host than the issuer URL. Merged with
#: ``JWKS_ALLOWED_HOSTS``.
KNOWN_JWKS_HOSTS: dict[str, tuple[str, ...]] = {
    "https://accounts.google.com": ("www.googleapis.com",),
}

_ADDRESS = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Cloud metadata endpoints outside the link-local ranges (AWS over IPv6, Alibaba Cloud).
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: What the C resolver accepts as an IPv4 address besides dotted quads: 2852039166,
#: 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518 ...
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)
_HOST_ENTRY = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::(\d{1,5}))?")


class UnknownKey(Exception):
    """The issuer publishes no key with the token's ``kid``."""


class RefusedAddress(NewConnectionError):
    """A connection to a host that resolves to a forbidden address was not made."""

    def __init__(self, conn: Any, reason: str) -> None:
        super().__init__(conn, reason)
        self.reason_text = reason


def _cache_key(kind: str, issuer_url: str) -> str:
    return cache_key(f"jwks-{kind}", issuer_url)


# --- address policy -------------------------------------------------------------------------
def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, IPv4-compatible)."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if int(addr) >> 32 == 0 and int(addr) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(addr))
    return None


def refused_address(addr: _ADDRESS) -> str | None:
    """Why keys may never be fetched from ``addr`` (None: they may)."""
    candidates: list[_ADDRESS] = [addr]
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            candidates.append(embedded)
    for candidate in candidates:
        if candidate.is_link_local:
            return "a link-local address"
        if candidate.is_multicast:
            return "a multicast address"
        if candidate.is_unspecified or (
            isinstance(candidate, ipaddress.IPv4Address)
            and (candidate in _THIS_NETWORK or candidate == ipaddress.IPv4Address(0xFFFFFFFF))
        ):
            return "an unspecified or broadcast address"
        if candidate in _METADATA_ADDRESSES:
            return "a cloud metadata address"
    return None


def _parse_address(text: str) -> _ADDRESS | None:
    """``text`` as an IP address, in any spelling the resolver accepts, else None."""
    text = text.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_fetch_url(url: str) -> None:
    """Raise IssuerUnavailable unless ``url`` may be fetched (https; loopback http if allowed).

    A host written as an address is checked here; every connection checks the addresses it
    resolves to again (:func:`_open_vetted_socket`).
    """
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
    addr = _parse_address(host)
    if addr is not None:
        # Cloud metadata endpoints are never an issuer.
        reason = refused_address(addr)
        if reason is not None:
            raise IssuerUnavailable(f"refusing to fetch keys from {reason}")


def parse_host_entry(entry: Any) -> tuple[str, int | None] | None:
    """``'host'`` or ``'host:port'`` of ``JWKS_ALLOWED_HOSTS`` as (host, port); None if invalid."""
    if not isinstance(entry, str):
        return None
    match = _HOST_ENTRY.fullmatch(entry.strip().lower())
    if match is None:
        return None
    host = match.group(1).strip("[]").rstrip(".")
    port = int(match.group(2)) if match.group(2) else None
    if port is not None and not 0 < port < 65536:
        return None
    return host, port


def _default_port(url: str) -> int:
    return 443 if urlsplit(url).scheme == "https" else 80


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise IssuerUnavailable("key URL has an invalid port") from None
    host = (parts.hostname or "").lower().rstrip(".")
    return host, port or _default_port(url)


def allowed_jwks_hosts(issuer_url: str) -> list[str]:
    """Hosts other than the issuer's own that its ``jwks_uri`` may name."""
    configured = tp_settings.JWKS_ALLOWED_HOSTS or {}
    extra = configured.get(issuer_url, ()) if isinstance(configured, dict) else ()
    if not isinstance(extra, list | tuple):  # malformed (check E019): allow nothing extra
        extra = ()
    return [*KNOWN_JWKS_HOSTS.get(issuer_url, ()), *extra]


def check_jwks_uri(issuer_url: str, jwks_uri: str) -> None:
    """Raise IssuerUnavailable unless ``jwks_uri`` is on the issuer's host or an allowed one."""
    check_fetch_url(jwks_uri)
    host, port = _host_port(jwks_uri)
    if (host, port) == _host_port(issuer_url):
        return
    for entry in allowed_jwks_hosts(issuer_url):
        parsed = parse_host_entry(entry)
        if parsed is None:
            continue
        allowed_host, allowed_port = parsed
        # An entry without a port allows the scheme's default port only.
        if (host, port) == (allowed_host, allowed_port or _default_port(jwks_uri)):
            return
    raise IssuerUnavailable(
        f"the discovery document's jwks_uri names host {host!r}, which is neither the issuer's "
        "own host nor allowed for it in JWKS_ALLOWED_HOSTS"
    )


# --- connections that only reach vetted addresses --------------------------------------------
def _vet(addr_text: str, *, loopback_only: bool) -> str | None:
    addr = _parse_address(addr_text.split("%", 1)[0])
    if addr is None:
        return f"an address that cannot be parsed ({addr_text!r})"
    reason = refused_address(addr)
    if reason is None and loopback_only and not addr.is_loopback:
        reason = "a non-loopback address over http"
    return reason


def _open_vetted_socket(conn: HTTPConnection, *, loopback_only: bool) -> socket.socket:
    """Resolve ``conn``'s host, refuse it if any address is forbidden, connect to a vetted one.

    Replaces urllib3's ``create_connection``: the addresses checked are the addresses used, so
    a DNS answer cannot change between the check and the connection (rebinding), and the peer
    address of the connected socket is checked once more.
    """
    host = conn._dns_host.strip("[]")  # the proxy's host when a proxy is in use
    port = conn.port
    try:
        infos = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    for info in infos:
        reason = _vet(str(info[4][0]), loopback_only=loopback_only)
        if reason is not None:
            raise RefusedAddress(
                conn, f"refusing to fetch keys from {host}: it resolves to {reason}"
            )
    if not infos:
        raise NewConnectionError(conn, f"{host} resolves to no address")
    last_error: OSError | None = None
    for family, socktype, proto, _name, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            if isinstance(conn.timeout, int | float):  # not urllib3's "default" sentinel
                sock.settimeout(conn.timeout)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(sockaddr)
            peer = str(sock.getpeername()[0])
            reason = _vet(peer, loopback_only=loopback_only)
            if reason is not None:
                sock.close()
                raise RefusedAddress(
                    conn, f"refusing to fetch keys from {host}: connected to {reason}"
                )
            return sock
        except TimeoutError as exc:
            sock.close()
            last_error = exc
        except RefusedAddress:
            raise
        except OSError as exc:
            sock.close()
            last_error = exc
    if isinstance(last_error, TimeoutError):
        raise ConnectTimeoutError(conn, f"connection to {host} timed out") from last_error
    raise NewConnectionError(
        conn, f"Failed to establish a new connection: {last_error}"
    ) from last_error


class _VettedHTTPConnection(HTTPConnection):
    """Plain http is only ever for loopback issuers: every address must be loopback."""

    def _new_conn(self) -> socket.socket:
        return _open_vetted_socket(self, loopback_only=True)


class _VettedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _open_vetted_socket(self, loopback_only=False)


class _VettedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _VettedHTTPConnection


class _VettedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _VettedHTTPSConnection


_POOL_CLASSES = {"http": _VettedHTTPPool, "https": _VettedHTTPSPool}


class _VettingAdapter(HTTPAdapter):
    """A requests adapter whose connections (direct, or to an http(s) proxy) are vetted."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS managers bring their own pools
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


def _refusal(exc: BaseException) -> RefusedAddress | None:
    """The RefusedAddress somewhere inside requests' and urllib3's wrapping of ``exc``."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, RefusedAddress):
            return item
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    return None


# --- environment: proxies and CA bundle --------------------------------------------------------
def _proxies(url: str) -> dict[str, str]:
    """Proxies for ``url`` from HTTPS_PROXY/ALL_PROXY/NO_PROXY (none for loopback http)."""
    if not tp_settings.JWKS_TRUST_ENV or urlsplit(url).scheme != "https":
        return {}
    return requests.utils.get_environ_proxies(url)


def _verify() -> str | bool:
    """``verify``: JWKS_CA_BUNDLE, else the environment's CA variables, else certifi."""
    bundle = tp_settings.JWKS_CA_BUNDLE
    if bundle:
        return str(bundle)
    if tp_settings.JWKS_TRUST_ENV:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
            value = os.environ.get(name)
            if value:
                return value
        directory = os.environ.get("SSL_CERT_DIR")
        if directory and os.path.isdir(directory):
            return directory
    return True


def _get_json(url: str) -> dict[str, Any]:
    check_fetch_url(url)
    timeout = float(tp_settings.JWKS_FETCH_TIMEOUT)
    limit = int(tp_settings.JWKS_MAX_BYTES)
    session = requests.Session()
    # The environment is applied by _proxies() and _verify(), not by requests: no .netrc
    # credentials, and REQUESTS_CA_BUNDLE cannot win over JWKS_CA_BUNDLE.
    session.trust_env = False
    adapter = _VettingAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    started = time.monotonic()
    try:
        with session.get(
            url,
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,
            verify=_verify(),
            proxies=_proxies(url),
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
        refusal = _refusal(exc)
        if refusal is not None:
            raise IssuerUnavailable(refusal.reason_text) from None
        raise IssuerUnavailable(f"could not fetch {url}: {type(exc).__name__}") from None
    except OSError as exc:  # e.g. a CA bundle path that does not exist
        raise IssuerUnavailable(f"could not fetch {url}: {exc}") from None
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
    check_jwks_uri(issuer_url, jwks_uri)
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


def _refetch_interval() -> float:
    """Seconds after a successful fetch before an unknown ``kid`` may trigger the next one."""
    return min(float(tp_settings.JWKS_REFRESH_COOLDOWN), float(NEW_KEY_INTERVAL))


def _gate_timeout(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def _refresh(issuer_url: str) -> dict[str, Any] | None:
    """Refetch keys unless another worker did recently. Returns the newest keyset.

    One gate per issuer in the shared cache: ``fetching`` while a fetch is in flight, then
    ``done`` for :func:`_refetch_interval` (at most :data:`NEW_KEY_INTERVAL`, so a key the
    issuer publishes is picked up within 10 s) or ``failed`` for ``JWKS_REFRESH_COOLDOWN`` (an
    issuer in trouble is not hammered; also the Retry-After of ``issuer-unavailable``).
    """
    cache = get_cache()
    timeout = float(tp_settings.JWKS_FETCH_TIMEOUT)
    interval = _refetch_interval()
    gate = _cache_key("gate", issuer_url)
    # cache.add is atomic across workers (Redis SET NX, memcached add, locmem lock): one winner.
    # While in flight the gate outlives the longest possible fetch (discovery + JWKS, each at
    # most twice the timeout), so a slow fetch is never duplicated.
    if not cache.add(gate, "fetching", _gate_timeout(max(interval, 4 * timeout + 1))):
        # Someone fetched recently or is fetching now: wait for an in-flight fetch to finish.
        deadline = time.monotonic() + 2 * timeout + 1
        while cache.get(gate) == "fetching" and time.monotonic() < deadline:
            time.sleep(_POLL_INTERVAL)
        return _cached_keyset(issuer_url)
    # Caches may drop the gate early: the database cache and memcached expire on whole seconds,
    # and any cache may evict. The shared keyset's fetch time is the exact reference: never
    # fetch less than `interval` after the last successful fetch ended.
    keyset = _cached_keyset(issuer_url)
    if keyset is not None:
        remaining = float(keyset.get("fetched_at", 0)) + interval - time.time()
        if remaining > _MAX_EARLY_WAIT:
            cache.set(gate, "done", _gate_timeout(remaining))
            return keyset
        if remaining > 0:
            time.sleep(remaining)  # at most a second or so, for one request per interval
    try:
        keys = fetch_issuer_keys(issuer_url)
    except IssuerUnavailable as exc:
        logger.warning("fetching keys of issuer %s failed: %s", issuer_url, exc)
        cache.set(gate, "failed", _gate_timeout(float(tp_settings.JWKS_REFRESH_COOLDOWN)))
        raise
    _store_keyset(issuer_url, keys)
    cache.set(gate, "done", _gate_timeout(interval))
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
    get_cache().set(_cache_key("gate", issuer.url), "done", _gate_timeout(_refetch_interval()))
    return sorted(keys)


def forget_issuer_keys(issuer_url: str) -> None:
    cache = get_cache()
    cache.delete_many([_cache_key("set", issuer_url), _cache_key("gate", issuer_url)])
