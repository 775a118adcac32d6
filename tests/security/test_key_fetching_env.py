"""Key fetching honours the proxy and CA environment (JWKS_TRUST_ENV), through real servers.

An https issuer on 127.0.0.1 with a throwaway trustme CA (:class:`HttpsIdP`) and a real
threaded CONNECT proxy (:class:`ConnectProxy`) that counts tunnels: "the fetch went through the
proxy" is observed at the proxy, "the CA was trusted" by the TLS handshake succeeding.

The machine (and CI) sets REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE and SSL_CERT_DIR for
its package mirror, and may set proxy variables: every test starts from an environment with all
of them removed (``fetch_env``) and sets exactly what it means. requests does *not* bypass
proxies for 127.0.0.1 on its own (``should_bypass_proxies`` only reads NO_PROXY), so with
NO_PROXY cleared a loopback issuer is reached through the proxy.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from django.core.checks import run_checks

from tests.plugins.secrets_guard import record_secret
from tests.support.connect_proxy import ConnectProxy
from tests.support.tls_server import HttpsIdP
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.errors import IssuerUnavailable
from trusted_publishing.keys import fetch_issuer_keys
from trusted_publishing.models import GitHubPublisher

PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "REQUEST_METHOD",  # urllib ignores HTTP_PROXY under CGI
)
CA_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture
def fetch_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*PROXY_VARS, *CA_VARS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="key fetching test CA")


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def other_ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("other-ca") / "ca.pem"
    trustme.CA(organization_name="unrelated CA").cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def https_idp_server(ca: trustme.CA) -> Iterator[HttpsIdP]:
    with HttpsIdP(ca) as server:
        yield server


@pytest.fixture
def https_idp(https_idp_server: HttpsIdP) -> Iterator[HttpsIdP]:
    https_idp_server.reset()
    yield https_idp_server
    https_idp_server.reset()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    with ConnectProxy() as server:
        yield server


def _tunnels(proxy: ConnectProxy, idp: HttpsIdP) -> int:
    return proxy.connects.count(f"127.0.0.1:{idp.port}")


# --- proxies -----------------------------------------------------------------------------------
def test_https_proxy_from_the_environment_carries_the_fetch(
    fetch_env: pytest.MonkeyPatch, https_idp: HttpsIdP, proxy: ConnectProxy, ca_file: str
) -> None:
    fetch_env.setenv("HTTPS_PROXY", proxy.url)
    with override_tp_settings(JWKS_CA_BUNDLE=ca_file):
        keys = fetch_issuer_keys(https_idp.url)
    assert https_idp.issuer.kid in keys
    # Discovery and JWKS: one CONNECT tunnel each, TLS to the issuer inside it.
    assert proxy.connects == [f"127.0.0.1:{https_idp.port}"] * 2
    assert proxy.bytes_relayed > 0
    assert (https_idp.discovery_fetches, https_idp.jwks_fetches) == (1, 1)


@pytest.mark.django_db
def test_a_mint_works_through_the_proxy(
    fetch_env: pytest.MonkeyPatch,
    https_idp: HttpsIdP,
    proxy: ConnectProxy,
    ca_file: str,
    client: Any,
) -> None:
    """End to end: the mint endpoint fetches the issuer's keys through HTTPS_PROXY."""
    fetch_env.setenv("https_proxy", proxy.url)  # lower case works as well
    issuer = https_idp.issuer.register("github", static=False)
    publisher = GitHubPublisher.objects.create(
        issuer=issuer,
        repository_owner="acme",
        repository_name="widgets",
        workflow_filename="release.yml",
    )
    publisher.add_projects(["widgets"])
    token = https_idp.issuer.sign(https_idp.issuer.github_claims())
    with override_tp_settings(JWKS_CA_BUNDLE=ca_file):
        response = client.post(
            "/_/oidc/mint-token", data=json.dumps({"token": token}), content_type="application/json"
        )
    assert response.status_code == 200, response.content[:300]
    record_secret(response.json()["token"], "minted token")
    assert _tunnels(proxy, https_idp) == 2


def test_all_proxy_is_honoured(
    fetch_env: pytest.MonkeyPatch, https_idp: HttpsIdP, proxy: ConnectProxy, ca_file: str
) -> None:
    fetch_env.setenv("ALL_PROXY", proxy.url)
    with override_tp_settings(JWKS_CA_BUNDLE=ca_file):
        fetch_issuer_keys(https_idp.url)
    assert _tunnels(proxy, https_idp) == 2


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "127.0.0.0/8", "*"])
def test_no_proxy_excludes_the_issuer(
    fetch_env: pytest.MonkeyPatch,
    https_idp: HttpsIdP,
    proxy: ConnectProxy,
    ca_file: str,
    no_proxy: str,
) -> None:
    fetch_env.setenv("HTTPS_PROXY", proxy.url)
    fetch_env.setenv("NO_PROXY", no_proxy)
    with override_tp_settings(JWKS_CA_BUNDLE=ca_file):
        fetch_issuer_keys(https_idp.url)
    assert proxy.connects == []
    assert https_idp.jwks_fetches == 1


def test_the_proxy_resolves_names_the_index_cannot(
    fetch_env: pytest.MonkeyPatch, ca: trustme.CA, ca_file: str
) -> None:
    """An issuer name only the proxy knows: the index never resolves it, the proxy does."""
    name = "idp.egress-only.test"
    resolved: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        resolved.append(str(host))
        if host == name:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        return real_getaddrinfo(host, *args, **kwargs)

    fetch_env.setattr(socket, "getaddrinfo", getaddrinfo)
    with HttpsIdP(ca, names=(name,)) as idp:
        idp._base_url = f"https://{name}:{idp.port}"
        idp.issuer.url = idp.url
        with ConnectProxy(hosts={name: "127.0.0.1"}) as proxy:
            fetch_env.setenv("HTTPS_PROXY", proxy.url)
            with override_tp_settings(JWKS_CA_BUNDLE=ca_file):
                keys = fetch_issuer_keys(idp.url)
            assert idp.issuer.kid in keys
            assert proxy.connects == [f"{name}:{idp.port}"] * 2
        # Without the proxy the index cannot reach it at all.
        fetch_env.delenv("HTTPS_PROXY")
        with override_tp_settings(JWKS_CA_BUNDLE=ca_file), pytest.raises(IssuerUnavailable):
            fetch_issuer_keys(idp.url)
    assert name in resolved  # only by the last, direct attempt


def test_a_link_local_literal_is_refused_before_reaching_the_proxy(
    fetch_env: pytest.MonkeyPatch, proxy: ConnectProxy
) -> None:
    fetch_env.setenv("HTTPS_PROXY", proxy.url)
    for url in ("https://169.254.169.254", "https://2852039166", "https://[::ffff:a9fe:a9fe]"):
        with pytest.raises(IssuerUnavailable, match="link-local"):
            fetch_issuer_keys(url)
    assert proxy.connects == []


def test_a_proxy_on_a_link_local_address_is_refused(fetch_env: pytest.MonkeyPatch) -> None:
    """Through a proxy the address rule applies to the proxy, the one host the index reaches."""
    attempts: list[Any] = []
    real_socket = socket.socket

    class Recording(real_socket):  # type: ignore[misc, valid-type]
        def connect(self, address: Any) -> None:
            attempts.append(address)
            raise OSError("no network in this test")

    fetch_env.setattr(socket, "socket", Recording)
    fetch_env.setenv("HTTPS_PROXY", "http://169.254.169.254:3128")
    with pytest.raises(IssuerUnavailable, match="link-local"):
        fetch_issuer_keys("https://token.actions.githubusercontent.com")
    assert attempts == []


# --- CA bundle ---------------------------------------------------------------------------------
@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_ca_bundle_from_the_environment_is_trusted(
    fetch_env: pytest.MonkeyPatch, https_idp: HttpsIdP, ca_file: str, variable: str
) -> None:
    fetch_env.setenv(variable, ca_file)
    keys = fetch_issuer_keys(https_idp.url)  # no JWKS_CA_BUNDLE
    assert https_idp.issuer.kid in keys


def test_ssl_cert_dir_from_the_environment_is_trusted(
    fetch_env: pytest.MonkeyPatch, https_idp: HttpsIdP, ca: trustme.CA, tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to name the certificate by its subject hash")
    pem = ca.cert_pem.bytes()
    # OpenSSL looks certificates up in a directory by subject hash: <hash>.0 (c_rehash layout).
    subject_hash = (
        subprocess.run(
            [openssl, "x509", "-noout", "-subject_hash"], input=pem, capture_output=True, check=True
        )
        .stdout.decode()
        .strip()
    )
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / f"{subject_hash}.0").write_bytes(pem)
    fetch_env.setenv("SSL_CERT_DIR", str(directory))
    assert https_idp.issuer.kid in fetch_issuer_keys(https_idp.url)


def test_without_any_ca_setting_the_private_ca_is_not_trusted(
    fetch_env: pytest.MonkeyPatch, https_idp: HttpsIdP
) -> None:
    with pytest.raises(IssuerUnavailable, match="SSLError"):
        fetch_issuer_keys(https_idp.url)
    assert https_idp.total_requests == 0


def test_jwks_ca_bundle_wins_over_the_environment(
    fetch_env: pytest.MonkeyPatch, https_idp: HttpsIdP, ca_file: str, other_ca_file: str
) -> None:
    # The machine's own variable (the system bundle) does not hide the configured CA ...
    fetch_env.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    with override_tp_settings(JWKS_CA_BUNDLE=ca_file):
        assert https_idp.issuer.kid in fetch_issuer_keys(https_idp.url)
    # ... and a configured CA is the only one trusted, even if the environment trusts the issuer.
    fetch_env.setenv("REQUESTS_CA_BUNDLE", ca_file)
    with override_tp_settings(JWKS_CA_BUNDLE=other_ca_file), pytest.raises(IssuerUnavailable):
        fetch_issuer_keys(https_idp.url)


def test_a_missing_ca_bundle_is_a_clean_issuer_unavailable(
    fetch_env: pytest.MonkeyPatch, https_idp: HttpsIdP, tmp_path: Path
) -> None:
    fetch_env.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(IssuerUnavailable):
        fetch_issuer_keys(https_idp.url)


# --- JWKS_TRUST_ENV = False --------------------------------------------------------------------
def test_trust_env_off_ignores_proxy_and_ca_variables(
    fetch_env: pytest.MonkeyPatch,
    https_idp: HttpsIdP,
    proxy: ConnectProxy,
    ca_file: str,
) -> None:
    fetch_env.setenv("HTTPS_PROXY", proxy.url)
    fetch_env.setenv("REQUESTS_CA_BUNDLE", ca_file)
    with override_tp_settings(JWKS_TRUST_ENV=False), pytest.raises(IssuerUnavailable):
        fetch_issuer_keys(https_idp.url)  # certifi does not know the test CA
    assert proxy.connects == []
    with override_tp_settings(JWKS_TRUST_ENV=False, JWKS_CA_BUNDLE=ca_file):
        assert https_idp.issuer.kid in fetch_issuer_keys(https_idp.url)
    assert proxy.connects == []  # direct


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_trust_env_must_be_a_bool(value: Any) -> None:
    with override_tp_settings(JWKS_TRUST_ENV=value):
        ids = [m.id for m in run_checks()]
    assert "trusted_publishing.E017" in ids


def test_trust_env_default_passes_the_checks() -> None:
    assert "trusted_publishing.E017" not in [m.id for m in run_checks()]
