"""A counting identity provider on loopback: OIDC discovery, JWKS and GitHub's ID-token API.

The benchmark registers it with ``key_source=discovery`` (as GitHub and GitLab are in
production), so the index really fetches keys over HTTP on a cold cache and after a key
rotation. Every request is counted per endpoint; the benchmark asserts that the steady state
makes none and that one rotation costs exactly one discovery + JWKS fetch.

``GET /token?audience=<aud>`` with ``Authorization: bearer <request token>`` answers
``{"value": <jwt>}`` as GitHub Actions does, so ``uv publish --trusted-publishing always`` can
play a CI job (figure 2).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from trusted_publishing.testing import TestIssuer

TOKEN_LIFETIME = 1200
_ENDPOINTS = {
    "/.well-known/openid-configuration": "discovery",
    "/.well-known/jwks": "jwks",
    "/token": "token",
}


class CountingIdP:
    def __init__(
        self,
        *,
        repository: str = "acme/widgets",
        workflow: str = "release.yml",
        request_token: str = "bench-request-token",
    ) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.repository = repository
        self.workflow = workflow
        self.request_token = request_token
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = TestIssuer(self.url, kid="bench-key-1")
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- what the benchmark asks of it ---------------------------------------------------------
    @property
    def token_url(self) -> str:
        return f"{self.url}/token?api-version=2.0"

    def fetches(self) -> dict[str, int]:
        with self._lock:
            return {"discovery": self.requests["discovery"], "jwks": self.requests["jwks"]}

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    def rotate(self) -> None:
        """A new signing key with a new kid; the old one is no longer published."""
        with self._lock:
            self.issuer.rotate()

    def sign(self, count: int, audience: str | None = None) -> list[str]:
        """``count`` identity tokens of the benchmark job, each with its own ``jti``, valid for
        20 minutes (pre-signed batches may wait a while before they are sent)."""
        issuer = self.issuer
        return [
            issuer.sign(
                issuer.github_claims(
                    self.repository, self.workflow, audience=audience, lifetime=TOKEN_LIFETIME
                )
            )
            for _ in range(count)
        ]

    # --- HTTP --------------------------------------------------------------------------------
    def _document(self, endpoint: str) -> dict[str, Any]:
        if endpoint == "discovery":
            return self.issuer.discovery_document(f"{self.url}/.well-known/jwks")
        return self.issuer.jwks()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                endpoint = _ENDPOINTS.get(parts.path)
                with idp._lock:
                    if endpoint:
                        idp.requests[endpoint] += 1
                    body: dict[str, Any] | None = None
                    if endpoint in ("discovery", "jwks"):
                        body = idp._document(endpoint)
                if endpoint is None:
                    self._send(404, {"message": "not found"})
                elif endpoint == "token":
                    self._token(parse_qs(parts.query))
                else:
                    self._send(200, body)

            def _token(self, query: dict[str, list[str]]) -> None:
                scheme, _, supplied = self.headers.get("Authorization", "").partition(" ")
                audience = (query.get("audience") or [""])[0]
                if scheme.lower() != "bearer" or supplied.strip() != idp.request_token:
                    self._send(401, {"message": "Bad credentials"})
                elif not audience:
                    self._send(400, {"message": "audience required"})
                else:
                    with idp._lock:
                        [token] = idp.sign(1, audience)
                    self._send(200, {"count": 1, "value": token})

            def _send(self, status: int, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> CountingIdP:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
