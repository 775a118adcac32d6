"""Finding 10 over HTTP against gunicorn: an index that reaches its identity provider only
through an egress proxy, trusting a private CA through the usual variables, mints.

The example index runs under gunicorn with ``HTTPS_PROXY`` naming a real CONNECT proxy on
127.0.0.1 and ``REQUESTS_CA_BUNDLE`` naming a throwaway CA's certificate; the issuer is an https
FakeIdP with a certificate from that CA. The proxy sees the discovery and JWKS tunnels; the TLS
handshake through them succeeds only because the CA variable was honoured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme

from tests.plugins.secrets_guard import record_secret
from tests.support.connect_proxy import ConnectProxy
from tests.support.server import IndexServer
from tests.support.tls_server import HttpsIdP

pytestmark = [pytest.mark.slow]

AUDIENCE = "egress-proxy.example.internal"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="corporate CA of the proxy test")


@pytest.fixture(scope="module")
def idp(ca: trustme.CA) -> Iterator[HttpsIdP]:
    with HttpsIdP(ca) as server:
        yield server


@pytest.fixture(scope="module")
def proxy() -> Iterator[ConnectProxy]:
    with ConnectProxy() as server:
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA, idp: HttpsIdP, proxy: ConnectProxy
) -> Iterator[IndexServer]:
    workdir: Path = tmp_path_factory.mktemp("egress-proxy")
    ca_file = workdir / "corporate-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    index = IndexServer(
        workdir / "server",
        audience=AUDIENCE,
        workers=2,
        threads=2,
        extra_env={
            # Everything, loopback included, leaves through the proxy.
            "HTTPS_PROXY": proxy.url,
            "https_proxy": proxy.url,
            "NO_PROXY": "",
            "no_proxy": "",
            "REQUESTS_CA_BUNDLE": str(ca_file),
            "TP_JWKS_CA_BUNDLE": "",
        },
    )
    try:
        index.start()
        assert index.agent is not None
        index.agent("create_project", name="widgets")
        index.agent(
            "execute",
            code=(
                "from trusted_publishing.models import GitHubPublisher, TrustedIssuer\n"
                f"issuer = TrustedIssuer.objects.create(url={idp.url!r}, provider='github', "
                "name='issuer behind the proxy', key_source='discovery')\n"
                "p = GitHubPublisher.objects.create(issuer=issuer, repository_owner='acme', "
                "repository_name='widgets', workflow_filename='release.yml')\n"
                "p.add_projects(['widgets'])\n"
                "result = p.pk\n"
            ),
        )
    except BaseException:
        print(index.log_tail())
        index.stop()
        raise
    yield index
    index.stop()


def test_keys_are_fetched_through_the_egress_proxy_with_the_corporate_ca(
    server: IndexServer, idp: HttpsIdP, proxy: ConnectProxy
) -> None:
    token = idp.issuer.sign(idp.github_claims(AUDIENCE))
    record_secret(token, "jwt")
    with requests.Session() as session:
        session.trust_env = False  # the test talks to gunicorn directly
        response = session.post(
            server.http_base_url + "/_/oidc/mint-token", json={"token": token}, timeout=60
        )
    assert response.status_code == 200, (response.text[:300], server.log_tail())
    record_secret(response.json()["token"], "minted token")
    # Discovery and JWKS each came through one CONNECT tunnel to the issuer.
    assert proxy.connects.count(f"127.0.0.1:{idp.port}") == 2, proxy.connects
    assert (idp.discovery_fetches, idp.jwks_fetches) == (1, 1)
