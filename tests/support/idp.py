"""A fake OIDC identity provider on loopback, for end-to-end tests with the real clients.

It serves, over plain http on 127.0.0.1 (random port):

* ``/.well-known/openid-configuration`` and ``/.well-known/jwks`` (so the index can register it
  as a *discovery* issuer: ``TRUSTED_PUBLISHING["ALLOW_INSECURE_LOOPBACK_ISSUERS"] = True``);
* GitHub Actions' ID-token request API at ``/token``: ``GET /token?audience=<aud>`` with
  ``Authorization: bearer <request token>`` → ``{"value": <jwt>}``.

Tokens are signed by a :class:`trusted_publishing.testing.TestIssuer` whose ``iss`` is this
server's URL. A test chooses the claims of the tokens handed out (``job()`` for GitHub-style
claims that stick, ``next_claims()`` for a one-shot override) and can inject faults::

    idp.fault("jwks", "500")           # or "html", "huge", "redirect", "slow", "reset"
    idp.mismatched_issuer = True       # discovery names another issuer
    idp.rotate()                       # new signing key; old key dropped (keep_old=True keeps it)
    idp.stop(); idp.start()            # really down: connection refused, same port after
    idp.count("jwks")                  # requests seen per endpoint

All knobs are reset by :meth:`reset`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from trusted_publishing.testing import TestIssuer

#: endpoint names accepted by fault()/count()
ENDPOINTS = ("discovery", "jwks", "token")
FAULTS = ("500", "html", "huge", "redirect", "slow", "reset", "404")
_PATHS = {
    "/.well-known/openid-configuration": "discovery",
    "/.well-known/jwks": "jwks",
    "/token": "token",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeIdP:
    def __init__(
        self,
        *,
        request_token: str = "test-request-token",
        audience: str | None = None,
        port: int = 0,
    ) -> None:
        self.request_token = request_token
        self.default_audience = audience
        self._port = port
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.issuer: TestIssuer | None = None
        self.reset()

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeIdP:
        """Start serving (again, on the same port after stop())."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", self._port), self._handler_class())
        self._port = server.server_address[1]
        if self.issuer is None:
            self.issuer = TestIssuer(self.url)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"fake-idp-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: clients get "connection refused" until start()."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    close = stop

    def __enter__(self) -> FakeIdP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The issuer URL (``iss``)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def token_url(self) -> str:
        # GitHub's real URL carries a query string; id >= 1.6.1 and uv merge `audience` into it.
        return f"{self.url}/token?api-version=2.0"

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks"

    # --- knobs -------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._job: dict[str, Any] = {}
            self._claims_factory: Callable[[str], dict[str, Any]] | None = None
            self._one_shot: list[dict[str, Any] | Callable[[str], dict[str, Any]]] = []
            self._faults: dict[str, tuple[str, dict[str, Any]]] = {}
            self._old_keys: list[dict[str, Any]] = []
            self.mismatched_issuer = False
            self.requests: Counter[str] = Counter()
            self.log: list[tuple[str, str]] = []
            self.last_audience: str | None = None
            self.issued: list[dict[str, Any]] = []

    def job(
        self,
        repository: str = "acme/widgets",
        workflow: str = "release.yml",
        *,
        environment: str | None = None,
        ref: str = "refs/tags/v1.0.0",
        **extra: Any,
    ) -> FakeIdP:
        """GitHub claims of every following token (until changed or reset)."""
        with self._lock:
            self._job = {
                "repository": repository,
                "workflow": workflow,
                "environment": environment,
                "ref": ref,
                **extra,
            }
            self._claims_factory = None
        return self

    def claims(self, factory: Callable[[str], dict[str, Any]]) -> FakeIdP:
        """Every following token gets ``factory(audience)`` as its claims (any provider)."""
        with self._lock:
            self._claims_factory = factory
        return self

    def next_claims(self, claims: dict[str, Any] | Callable[[str], dict[str, Any]]) -> FakeIdP:
        """The next token only gets these claims (a dict, or a function of the audience)."""
        with self._lock:
            self._one_shot.append(claims)
        return self

    def fault(self, endpoint: str, kind: str | None, **options: Any) -> None:
        """Make ``endpoint`` ("discovery", "jwks", "token" or "*") misbehave; kind None clears.

        Kinds: "500" (HTTP 500 JSON), "404", "html" (200 with an HTML page), "huge" (200 with
        ``size`` bytes, default 2 MiB, of valid-looking JSON), "redirect" (302 to ``location``,
        default an address nobody listens on), "slow" (sleep ``delay`` seconds, default 10,
        then answer normally), "reset" (close the connection without an answer).
        """
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        if kind is not None and kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            if kind is None:
                self._faults.pop(endpoint, None)
            else:
                self._faults[endpoint] = (kind, options)

    @contextmanager
    def faulty(self, endpoint: str, kind: str, **options: Any) -> Iterator[None]:
        self.fault(endpoint, kind, **options)
        try:
            yield
        finally:
            self.fault(endpoint, None)

    def rotate(self, *, keep_old: bool = False) -> None:
        """Switch to a new signing key (new kid). keep_old: still publish the old public key."""
        assert self.issuer is not None
        with self._lock:
            if keep_old:
                self._old_keys.append(self.issuer.public_jwk())
            self.issuer.rotate()

    def count(self, endpoint: str) -> int:
        return self.requests[endpoint]

    # --- documents -----------------------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        assert self.issuer is not None
        return {"keys": [self.issuer.public_jwk(), *self._old_keys]}

    def discovery(self) -> dict[str, Any]:
        assert self.issuer is not None
        document = self.issuer.discovery_document(jwks_uri=self.jwks_url)
        if self.mismatched_issuer:
            document["issuer"] = "http://127.0.0.1:1/someone-else"
        return document

    def github_claims(self, audience: str, **overrides: Any) -> dict[str, Any]:
        assert self.issuer is not None
        job = {**self._job, **overrides}
        repository = job.pop("repository", "acme/widgets")
        workflow = job.pop("workflow", "release.yml")
        return self.issuer.github_claims(repository, workflow, aud=audience, **job)

    def sign(self, claims: dict[str, Any]) -> str:
        assert self.issuer is not None
        return self.issuer.sign(claims)

    def token_for(self, audience: str) -> str:
        """The JWT the token endpoint would hand out now (also used for GitLab-style env vars)."""
        with self._lock:
            spec = self._one_shot.pop(0) if self._one_shot else None
            factory = self._claims_factory
        if callable(spec):
            claims = spec(audience)
        elif spec is not None:
            claims = dict(spec)
        elif factory is not None:
            claims = factory(audience)
        else:
            claims = self.github_claims(audience)
        self.issued.append(claims)
        return self.sign(claims)

    # --- HTTP --------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # keep pytest output clean; see idp.log

            def _send(
                self,
                status: int,
                body: bytes,
                content_type: str = "application/json",
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: Any) -> None:
                self._send(status, json.dumps(data).encode())

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                endpoint = _PATHS.get(parts.path)
                with idp._lock:
                    idp.log.append(("GET", self.path))
                    if endpoint:
                        idp.requests[endpoint] += 1
                    fault = idp._faults.get(endpoint or "") or idp._faults.get("*")
                if endpoint is None:
                    self._json(404, {"message": "not found"})
                    return
                if fault is not None and self._apply_fault(*fault):
                    return
                if endpoint == "discovery":
                    self._json(200, idp.discovery())
                elif endpoint == "jwks":
                    self._json(200, idp.jwks())
                else:
                    self._token(parse_qs(parts.query))

            def _apply_fault(self, kind: str, options: dict[str, Any]) -> bool:
                """Answer with the fault; False means "carry on normally" (slow)."""
                if kind == "slow":
                    time.sleep(float(options.get("delay", 10)))
                    return False
                if kind == "reset":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return True
                if kind == "500":
                    self._json(500, {"message": "internal error"})
                elif kind == "404":
                    self._json(404, {"message": "not found"})
                elif kind == "html":
                    self._send(
                        200,
                        b"<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>",
                        "text/html; charset=utf-8",
                    )
                elif kind == "huge":
                    size = int(options.get("size", 2 * 1024 * 1024))
                    padding = b" " * max(0, size - 12)
                    self._send(200, b'{"keys": []' + padding + b"}")
                elif kind == "redirect":
                    location = options.get("location", "http://127.0.0.1:9/elsewhere")
                    self._send(302, b"", headers={"Location": location})
                return True

            def _token(self, query: dict[str, list[str]]) -> None:
                scheme, _, supplied = self.headers.get("Authorization", "").partition(" ")
                if scheme.lower() != "bearer" or supplied.strip() != idp.request_token:
                    self._json(401, {"message": "Bad credentials"})
                    return
                audience = (query.get("audience") or [idp.default_audience or ""])[0]
                if not audience:
                    self._json(400, {"message": "audience required"})
                    return
                idp.last_audience = audience
                self._json(200, {"count": 1, "value": idp.token_for(audience)})

        return Handler
