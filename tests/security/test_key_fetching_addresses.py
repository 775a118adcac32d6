"""Never link-local, however spelled or resolved; ``jwks_uri`` only on allowed hosts.

The address that is *connected to* is what counts: every spelling of the metadata address the C
resolver accepts (``2852039166``, ``0xa9fea9fe``, ``[::ffff:169.254.169.254]`` ...), host names
that resolve to one (``socket.getaddrinfo`` patched), and a peer address that turns out to be
one. A recording ``socket.socket`` shows that no connection was even attempted. Ordinary
issuers (loopback http, https by name, Google's keys on www.googleapis.com) keep working.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trustme
from django.core.checks import run_checks

from tests.support.idp import FakeIdP
from tests.support.tls_server import HttpsIdP
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.errors import IssuerUnavailable
from trusted_publishing.keys import (
    check_fetch_url,
    check_jwks_uri,
    fetch_issuer_keys,
    get_signing_key,
)

#: Every spelling of a forbidden address that the resolver turns into one.
FORBIDDEN_URLS = [
    "https://2852039166/",  # 169.254.169.254 as one decimal number
    "https://0xa9fea9fe/",  # ... as one hex number
    "https://0xA9FEA9FE/",
    "https://0251.0376.0251.0376/",  # ... in octal
    "https://169.254.43518/",  # ... a.b.c with a 16-bit last part
    "https://169.254.169.254./",  # trailing dot
    "https://[::ffff:169.254.169.254]/",  # IPv4-mapped IPv6
    "https://[::ffff:a9fe:a9fe]/",
    "https://[64:ff9b::a9fe:a9fe]/",  # NAT64
    "https://[2002:a9fe:a9fe::1]/",  # 6to4
    "https://[::169.254.169.254]/",  # IPv4-compatible (deprecated)
    "https://[fe80::1]/",  # IPv6 link-local
    "https://[fe80::1%25eth0]/",
    "https://[fd00:ec2::254]/",  # AWS metadata over IPv6 (not link-local)
    "https://100.100.100.200/",  # Alibaba Cloud metadata
    "https://0.0.0.0/",
    "https://0/",
    "https://[::]/",
    "https://224.0.0.1/",
    "https://[ff02::1]/",
    "https://255.255.255.255/",
]


class _Connects:
    """``socket.socket`` replaced: records every connect and refuses it (no network)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.attempts: list[Any] = []
        real = socket.socket
        recorder = self

        class Recording(real):  # type: ignore[misc, valid-type]
            def connect(self, address: Any) -> None:
                recorder.attempts.append(address)
                raise ConnectionRefusedError("recorded, not connected")

        monkeypatch.setattr(socket, "socket", Recording)


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> _Connects:
    return _Connects(monkeypatch)


class _Dns:
    """``socket.getaddrinfo`` answering from a table (name -> [(address, port or None)])."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.table: dict[str, list[tuple[str, int | None]]] = {}
        #: name -> successive answers (each lookup takes the next one), before ``table``
        self.sequence: dict[str, list[list[tuple[str, int | None]]]] = {}
        self.lookups: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            self.lookups.append(name)
            if self.sequence.get(name):
                table = self.sequence[name].pop(0)
            elif name in self.table:
                table = self.table[name]
            else:
                return real(host, port, *args, **kwargs)
            answers = []
            for address, mapped_port in table:
                real_port = mapped_port or int(port)
                if ":" in address:
                    answers.append(
                        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, real_port, 0, 0))
                    )
                else:
                    answers.append(
                        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, real_port))
                    )
            return answers

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> _Dns:
    return _Dns(monkeypatch)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="address test CA")


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


# --- spellings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_every_spelling_of_a_forbidden_address_is_refused(url: str, connects: _Connects) -> None:
    with pytest.raises(IssuerUnavailable, match="refusing"):
        check_fetch_url(url)
    with pytest.raises(IssuerUnavailable, match="refusing"):
        fetch_issuer_keys(url.rstrip("/"))
    assert connects.attempts == []


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_a_jwks_uri_with_a_forbidden_address_is_refused(
    url: str, connects: _Connects, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when JWKS_ALLOWED_HOSTS names the host, the address rule still holds."""
    issuer = "https://issuer.example.test"
    host = url.split("//", 1)[1].rstrip("/")
    with (
        override_tp_settings(JWKS_ALLOWED_HOSTS={issuer: [host]}),
        pytest.raises(IssuerUnavailable, match="refusing"),
    ):
        check_jwks_uri(issuer, url + "jwks")
    assert connects.attempts == []


# --- names that resolve to forbidden addresses -------------------------------------------------
@pytest.mark.parametrize(
    "answers",
    [
        [("169.254.169.254", None)],
        [("169.254.170.2", None)],  # ECS task metadata
        [("::ffff:169.254.169.254", None)],
        [("fe80::a9fe:a9fe", None)],
        [("fd00:ec2::254", None)],
        [("10.0.0.7", None), ("169.254.169.254", None)],  # any forbidden answer poisons the name
    ],
    ids=["metadata", "ecs", "v4-mapped", "v6-link-local", "aws-v6", "mixed"],
)
def test_a_name_resolving_to_a_forbidden_address_is_refused(
    answers: list[tuple[str, int | None]], dns: _Dns, connects: _Connects
) -> None:
    dns.table["metadata.example.test"] = answers
    with pytest.raises(IssuerUnavailable, match="resolves to"):
        fetch_issuer_keys("https://metadata.example.test")
    assert connects.attempts == []
    assert "metadata.example.test" in dns.lookups


def test_dns_rebinding_between_discovery_and_jwks_is_refused(
    dns: _Dns, ca: trustme.CA, ca_file: str
) -> None:
    """The name answers the real issuer for discovery, then the metadata address for the JWKS."""
    name = "rebind.example.test"
    with HttpsIdP(ca, names=(name,), base_url=f"https://{name}") as idp:
        dns.sequence[name] = [[("127.0.0.1", idp.port)], [("169.254.169.254", None)]]
        with (
            override_tp_settings(JWKS_CA_BUNDLE=ca_file),
            pytest.raises(IssuerUnavailable, match="link-local"),
        ):
            fetch_issuer_keys(f"https://{name}")
        assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 0)


def test_the_peer_address_is_checked_after_connecting(
    dns: _Dns, ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Belt and braces: a socket that ends up connected to a forbidden peer is dropped."""
    name = "peer.example.test"
    real = socket.socket

    class LyingPeer(real):  # type: ignore[misc, valid-type]
        def getpeername(self) -> Any:
            return ("169.254.169.254", 443)

    with HttpsIdP(ca, names=(name,), base_url=f"https://{name}") as idp:
        dns.table[name] = [("127.0.0.1", idp.port)]
        monkeypatch.setattr(socket, "socket", LyingPeer)
        with (
            override_tp_settings(JWKS_CA_BUNDLE=ca_file),
            pytest.raises(IssuerUnavailable, match="connected to a link-local address"),
        ):
            fetch_issuer_keys(f"https://{name}")
        assert idp.total_requests == 0


def test_loopback_http_must_really_be_loopback(dns: _Dns, connects: _Connects) -> None:
    dns.table["localhost"] = [("10.1.2.3", None)]
    with pytest.raises(IssuerUnavailable, match="non-loopback"):
        fetch_issuer_keys("http://localhost:8080")
    assert connects.attempts == []


# --- ordinary issuers still work ---------------------------------------------------------------
def test_a_loopback_http_issuer_still_works() -> None:
    with FakeIdP() as idp:
        assert idp.issuer.kid in fetch_issuer_keys(idp.url)
        assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


def test_an_https_issuer_by_name_still_works(dns: _Dns, ca: trustme.CA, ca_file: str) -> None:
    name = "token.actions.example.test"
    with HttpsIdP(ca, names=(name,), base_url=f"https://{name}") as idp:
        dns.table[name] = [("127.0.0.1", idp.port)]  # port 443 of the name -> the test server
        with override_tp_settings(JWKS_CA_BUNDLE=ca_file):
            assert idp.issuer.kid in fetch_issuer_keys(f"https://{name}")
        assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


@pytest.mark.django_db
def test_googles_keys_on_www_googleapis_com_are_allowed_by_default(
    dns: _Dns, ca: trustme.CA, ca_file: str
) -> None:
    """Google's issuer https://accounts.google.com publishes its keys on www.googleapis.com."""
    with HttpsIdP(
        ca,
        names=("accounts.google.com", "www.googleapis.com"),
        base_url="https://www.googleapis.com",
        issuer_url="https://accounts.google.com",
    ) as idp:
        dns.table["accounts.google.com"] = [("127.0.0.1", idp.port)]
        dns.table["www.googleapis.com"] = [("127.0.0.1", idp.port)]
        assert idp.discovery()["jwks_uri"].startswith("https://www.googleapis.com/")
        issuer = idp.issuer.register("google", static=False)
        # A deployment's own JWKS_ALLOWED_HOSTS does not drop the built-in entry.
        with override_tp_settings(
            JWKS_CA_BUNDLE=ca_file, JWKS_ALLOWED_HOSTS={"https://sso.example": ["keys.example"]}
        ):
            key = get_signing_key(issuer, idp.issuer.kid)
        assert key.key_id == idp.issuer.kid
        assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)


# --- jwks_uri host policy ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "jwks_uri",
    [
        "https://evil.example.test/jwks",
        "https://issuer.example.test.evil.test/jwks",
        "https://sub.issuer.example.test/jwks",
        "https://issuer.example.test:8443/jwks",  # same host, another port
        "https://127.0.0.1/jwks",
    ],
)
def test_a_jwks_uri_on_another_host_is_refused(jwks_uri: str) -> None:
    with pytest.raises(IssuerUnavailable, match="neither the issuer's own host"):
        check_jwks_uri("https://issuer.example.test", jwks_uri)


def test_a_jwks_uri_on_another_host_is_never_fetched(
    dns: _Dns, ca: trustme.CA, ca_file: str
) -> None:
    name = "issuer.example.test"
    with HttpsIdP(
        ca, names=(name,), base_url=f"https://{name}", jwks_uri="https://elsewhere.example.test/k"
    ) as idp:
        dns.table[name] = [("127.0.0.1", idp.port)]
        with (
            override_tp_settings(JWKS_CA_BUNDLE=ca_file),
            pytest.raises(IssuerUnavailable, match="neither the issuer's own host"),
        ):
            fetch_issuer_keys(f"https://{name}")
        assert idp.discovery_fetches == 1
    assert "elsewhere.example.test" not in dns.lookups


def test_jwks_allowed_hosts_allows_a_named_host(dns: _Dns, ca: trustme.CA, ca_file: str) -> None:
    name, keys_host = "sso.example.test", "keys.example.test"
    with HttpsIdP(
        ca,
        names=(name, keys_host),
        base_url=f"https://{name}",
        jwks_uri=f"https://{keys_host}/.well-known/jwks",
    ) as idp:
        dns.table[name] = [("127.0.0.1", idp.port)]
        dns.table[keys_host] = [("127.0.0.1", idp.port)]
        with override_tp_settings(JWKS_CA_BUNDLE=ca_file), pytest.raises(IssuerUnavailable):
            fetch_issuer_keys(f"https://{name}")
        with override_tp_settings(
            JWKS_CA_BUNDLE=ca_file, JWKS_ALLOWED_HOSTS={f"https://{name}": [keys_host]}
        ):
            assert idp.issuer.kid in fetch_issuer_keys(f"https://{name}")


def test_allowed_host_entries_with_and_without_port() -> None:
    issuer = "https://sso.example.test"
    with override_tp_settings(JWKS_ALLOWED_HOSTS={issuer: ["keys.example.test", "k2.test:8443"]}):
        check_jwks_uri(issuer, "https://keys.example.test/jwks")
        check_jwks_uri(issuer, "https://KEYS.example.test:443/jwks")
        check_jwks_uri(issuer, "https://k2.test:8443/jwks")
        for refused in ("https://keys.example.test:8443/jwks", "https://k2.test/jwks"):
            with pytest.raises(IssuerUnavailable):
                check_jwks_uri(issuer, refused)
        # Entries belong to their issuer only.
        with pytest.raises(IssuerUnavailable):
            check_jwks_uri("https://other.example.test", "https://keys.example.test/jwks")
    # A malformed value (a string, not a list; check E019) allows nothing, not its letters.
    with (
        override_tp_settings(JWKS_ALLOWED_HOSTS={issuer: "k"}),
        pytest.raises(IssuerUnavailable),
    ):
        check_jwks_uri(issuer, "https://k/jwks")


def test_the_issuers_own_host_and_port_are_allowed() -> None:
    check_jwks_uri("https://gitlab.com", "https://gitlab.com/oauth/discovery/keys")
    check_jwks_uri(
        "https://token.actions.githubusercontent.com",
        "https://token.actions.githubusercontent.com/.well-known/jwks",
    )
    check_jwks_uri("https://ghes.example.test/_services/token", "https://ghes.example.test/keys")
    check_jwks_uri("https://accounts.google.com", "https://www.googleapis.com/oauth2/v3/certs")


@pytest.mark.parametrize(
    "value",
    [
        [],
        {"https://sso.example": "keys.example"},
        {"sso.example": ["keys.example"]},
        {"https://sso.example": ["https://keys.example"]},
        {"https://sso.example": ["keys.example/path"]},
        {"https://sso.example": ["*.example"]},
        {"https://sso.example": [7]},
    ],
)
def test_malformed_jwks_allowed_hosts_fail_the_checks(value: Any) -> None:
    with override_tp_settings(JWKS_ALLOWED_HOSTS=value):
        ids = [m.id for m in run_checks()]
    assert "trusted_publishing.E019" in ids


def test_well_formed_jwks_allowed_hosts_pass_the_checks() -> None:
    value = {"https://sso.example": ["keys.example", "keys2.example:8443", "[2001:db8::1]:443"]}
    with override_tp_settings(JWKS_ALLOWED_HOSTS=value):
        assert "trusted_publishing.E019" not in [m.id for m in run_checks()]
