"""Two Trusted Publishing clients written for the tests (no client code is copied):

* :func:`gh_action_exchange` does what pypa/gh-action-pypi-publish's ``oidc-exchange.py`` does
  (derived ``https://{netloc}/_/oidc/*`` URLs, ``id.detect_credential``, its error handling), so
  the test can follow it with a real ``twine upload`` as ``twine-upload.sh`` does;
* :func:`pep807_mint` follows PEP 807: discovery from the upload URL, then audience and mint
  from the discovered endpoints.

Both take the CA bundle explicitly and ignore proxy/CA environment variables.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import id as oidc_id
import requests

PYTP_MEDIA_TYPE = "application/vnd.pypi.pytp.v1+json"


class ExchangeFailed(Exception):
    """The message the client would print before failing the job."""


def _session(ca: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # the machine's REQUESTS_CA_BUNDLE must not win
    session.verify = ca
    return session


def gh_action_exchange(repository_url: str, ca: str) -> str:
    """Return the minted token, or raise ExchangeFailed with the action's wording."""
    domain = urlsplit(repository_url).netloc
    session = _session(ca)
    audience_resp = session.get(f"https://{domain}/_/oidc/audience", timeout=5)
    if audience_resp.status_code == 403:
        raise ExchangeFailed(f"repository at {domain} has trusted publishing disabled")
    if audience_resp.status_code == 404:
        raise ExchangeFailed(f"repository at {domain} does not indicate trusted publishing support")
    if audience_resp.status_code != 200:
        raise ExchangeFailed(
            f"audience endpoint responded with unexpected {audience_resp.status_code}"
        )
    audience = audience_resp.json()["audience"]

    jwt = oidc_id.detect_credential(audience=audience)
    if jwt is None:
        raise ExchangeFailed("Attempted to discover OIDC in broken environment")

    mint_resp = session.post(f"https://{domain}/_/oidc/mint-token", json={"token": jwt}, timeout=5)
    try:
        payload = mint_resp.json()
    except ValueError:
        raise ExchangeFailed(
            f"the index produced an unexpected {mint_resp.status_code} response"
        ) from None
    if not mint_resp.ok:
        # The action indexes payload["errors"] unconditionally: a body without it crashes it.
        reasons = "\n".join(
            f"* `{error['code']}`: {error['description']}" for error in payload["errors"]
        )
        raise ExchangeFailed(
            f"Token request failed: the server refused the request for the "
            f"following reasons:\n\n{reasons}"
        )
    token = payload.get("token")
    if token is None:
        raise ExchangeFailed("Token response error: the index gave us an invalid response")
    return token


@dataclass
class Discovery:
    audience_endpoint: str
    token_mint_endpoint: str
    features: list[str]
    default_features: list[str]


def _potentially_trustworthy(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or parts.hostname is None:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def pep807_discover(
    upload_url: str, ca: str, accept: str | None = PYTP_MEDIA_TYPE
) -> requests.Response:
    parts = urlsplit(upload_url)
    key = quote_plus(parts.path)  # e.g. /legacy/ -> %2Flegacy%2F
    headers = {"Accept": accept} if accept is not None else {}
    return _session(ca).get(
        f"{parts.scheme}://{parts.netloc}/.well-known/pytp?discover={key}",
        headers=headers,
        timeout=10,
    )


def pep807_discovery(upload_url: str, ca: str) -> Discovery:
    response = pep807_discover(upload_url, ca)
    if response.status_code != 200:
        raise ExchangeFailed(f"discovery answered {response.status_code}")
    document = response.json()
    discovery = Discovery(
        audience_endpoint=document["audience-endpoint"],
        token_mint_endpoint=document["token-mint-endpoint"],
        features=document.get("features", []),
        default_features=document.get("default-features", ["multi-use-token"]),
    )
    host = urlsplit(upload_url).netloc
    for url in (discovery.audience_endpoint, discovery.token_mint_endpoint):
        # PEP 807: endpoints on the same host as the upload URL, and potentially trustworthy.
        if urlsplit(url).netloc != host or not _potentially_trustworthy(url):
            raise ExchangeFailed(f"discovery returned an endpoint on another host: {url}")
    return discovery


def pep807_mint(
    upload_url: str,
    ca: str,
    *,
    features: list[str] | None = None,
    packages: list[str] | None = None,
) -> dict[str, Any]:
    """Discover, fetch the audience, get an ambient identity token, mint. Returns the reply."""
    discovery = pep807_discovery(upload_url, ca)
    session = _session(ca)
    audience = session.get(discovery.audience_endpoint, timeout=10).json()["audience"]
    jwt = oidc_id.detect_credential(audience=audience)
    if jwt is None:
        raise ExchangeFailed("no ambient OIDC credential")
    body: dict[str, Any] = {"token": jwt}
    if features is not None:
        unsupported = set(features) - set(discovery.features)
        if unsupported:
            raise ExchangeFailed(f"index does not offer {sorted(unsupported)}")
        body["features"] = features
    if packages is not None:
        body["packages"] = packages
    response = session.post(discovery.token_mint_endpoint, json=body, timeout=10)
    if response.status_code != 200:
        problem = response.json()
        raise ExchangeFailed(
            f"{response.status_code} {problem.get('code')}: {problem.get('detail')}"
        )
    return response.json()
