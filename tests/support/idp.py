"""The test suite's fake OIDC identity provider: a real HTTP issuer on 127.0.0.1.

:class:`trusted_publishing.testing.TestIssuer` owns the keys, builds each provider's claims and
signs; :class:`FakeIdP` serves it over plain http on a random loopback port:

* ``/.well-known/openid-configuration`` and ``/.well-known/jwks``, so the index can register it
  as a *discovery* issuer (``TRUSTED_PUBLISHING["ALLOW_INSECURE_LOOPBACK_ISSUERS"] = True``);
* GitHub Actions' ID-token request API at ``/token``: ``GET /token?audience=<aud>`` with
  ``Authorization: bearer <request token>`` -> ``{"value": <jwt>}``.

A test chooses the claims of the tokens handed out (``job()`` for GitHub claims that stick,
``claims()`` for any provider, ``next_claims()`` for a one-shot override) and how the server
misbehaves::

    idp.mode = "500"                # any of MODES; "ok" behaves
    idp.slow_seconds = 3.0          # how long "slow" waits
    idp.rotate(keep_old=True)       # new signing key; the old public key stays published
    idp.extra_keys = [jwk]          # more keys published next to the current one
    idp.stop(); idp.start()         # really down (connection refused), same port after
    idp.jwks_fetches, idp.requests  # requests seen (per path)

All knobs are reset by :meth:`reset`. :class:`CountingServer` is a server that must never be
contacted (the target of hostile ``jku``/``x5u`` headers).
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from trusted_publishing.testing import TestIssuer

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks"
TOKEN_PATH = "/token"

#: What the server does (``ok`` = behave). Unless noted, a mode applies to every path (the token
#: endpoint too); modes ending in ``-jwks`` only break the JWKS endpoint.
MODES = (
    "ok",
    "down",  # accept the connection, then close it without answering
    "slow",  # answer only after `slow_seconds`
    "drip",  # send headers at once, then the body one byte every 0.2 s
    "500",
    "html",  # 200 with an HTML error page
    "huge",  # 10 MB body with Content-Length
    "huge-unsized",  # 10 MB body, no Content-Length (connection close)
    "redirect",  # 302 to /elsewhere/<path>, which would serve valid documents
    "wrong-issuer",  # discovery names another issuer
    "jwks-link-local",  # discovery points jwks_uri at a cloud metadata address
    "jwks-file",  # discovery points jwks_uri at file:///etc/passwd
    "500-jwks",
    "empty-keys",  # JWKS with no keys
    "not-object",  # JSON, but a list
)

ClaimsSpec = dict[str, Any] | Callable[[str], dict[str, Any]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeIdP:
    def __init__(
        self,
        *,
        request_token: str = "test-request-token",
        audience: str | None = None,
        issuer_factory: Callable[[str], TestIssuer] = TestIssuer,
    ) -> None:
        self.request_token = request_token
        self.default_audience = audience
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._release = threading.Event()  # wakes sleeping handlers at shutdown
        self._server: _Server | None = self._bind(0)
        self.port = self._server.server_address[1]
        self.issuer: TestIssuer = issuer_factory(self.url)
        self.reset()

    # --- lifecycle -----------------------------------------------------------------------------
    def _bind(self, port: int) -> _Server:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output quiet

            def do_GET(self) -> None:  # noqa: N802
                idp._handle(self)

        return _Server(("127.0.0.1", port), Handler)

    def start(self) -> FakeIdP:
        """Start serving (again, on the same port after :meth:`stop`)."""
        if self._thread is not None:
            return self
        if self._server is None:
            self._server = self._bind(self.port)
        self._release.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"fake-idp-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: clients get "connection refused" until :meth:`start`."""
        self._release.set()
        server, self._server = self._server, None
        if server is not None:
            if self._thread is not None:
                server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def __enter__(self) -> FakeIdP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The issuer URL (``iss``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        # GitHub's real URL carries a query string; id >= 1.6.1 and uv merge `audience` into it.
        return f"{self.url}{TOKEN_PATH}?api-version=2.0"

    @property
    def discovery_url(self) -> str:
        return self.url + DISCOVERY_PATH

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    # --- knobs ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Behave again, publish only the current key, forget claims choices and counters."""
        with self._lock:
            self.mode = "ok"
            self.slow_seconds = 2.0
            #: Extra keys published next to the issuer's current one (e.g. before a rotation).
            self.extra_keys: list[dict[str, Any]] = []
            self._job: dict[str, Any] = {}
            self._claims_factory: Callable[[str], dict[str, Any]] | None = None
            self._one_shot: list[ClaimsSpec] = []
            self.requests: Counter[str] = Counter()
            self.last_audience: str | None = None

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

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

    def next_claims(self, claims: ClaimsSpec) -> FakeIdP:
        """The next token only gets these claims (a dict, or a function of the audience)."""
        with self._lock:
            self._one_shot.append(claims)
        return self

    def rotate(self, *, keep_old: bool = False) -> None:
        """Switch to a new signing key (new kid). keep_old: still publish the old public key."""
        with self._lock:
            if keep_old:
                self.extra_keys.append(self.issuer.public_jwk())
            self.issuer.rotate()

    # --- observations --------------------------------------------------------------------------
    @property
    def jwks_fetches(self) -> int:
        return self.requests[JWKS_PATH]

    @property
    def discovery_fetches(self) -> int:
        return self.requests[DISCOVERY_PATH]

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    # --- documents and tokens ------------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.issuer.public_jwk(), *self.extra_keys]}

    def discovery(self) -> dict[str, Any]:
        document = self.issuer.discovery_document(jwks_uri=self.jwks_url)
        if self.mode == "wrong-issuer":
            document["issuer"] = "https://token.actions.githubusercontent.com"
        elif self.mode == "jwks-link-local":
            document["jwks_uri"] = "http://169.254.169.254/latest/meta-data/keys"
        elif self.mode == "jwks-file":
            document["jwks_uri"] = "file:///etc/passwd"
        return document

    def github_claims(self, audience: str, **overrides: Any) -> dict[str, Any]:
        job = {**self._job, **overrides}
        repository = job.pop("repository", "acme/widgets")
        workflow = job.pop("workflow", "release.yml")
        return self.issuer.github_claims(repository, workflow, audience=audience, **job)

    def sign(self, claims: dict[str, Any]) -> str:
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
        return self.sign(claims)

    # --- HTTP ----------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        with self._lock:
            self.requests[path] += 1
        mode = self.mode
        if mode == "down":
            # Close without a response: the client sees a dropped connection.
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if mode == "slow":
            self._release.wait(self.slow_seconds)
        if mode == "500" or (mode == "500-jwks" and path == JWKS_PATH):
            return self._send(handler, 500, b"internal error", "text/plain")
        if mode == "html":
            return self._send(handler, 200, b"<html><body>Maintenance</body></html>", "text/html")
        if mode == "redirect" and not path.startswith("/elsewhere/"):
            handler.send_response(302)
            handler.send_header("Location", f"{self.url}/elsewhere{path}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if mode in {"huge", "huge-unsized"}:
            return self._send_huge(handler, sized=mode == "huge")
        if mode == "not-object":
            return self._send(handler, 200, b"[1, 2, 3]", "application/json")

        path = path.removeprefix("/elsewhere")
        if path == DISCOVERY_PATH:
            body = json.dumps(self.discovery()).encode()
        elif path == JWKS_PATH:
            body = json.dumps({"keys": []} if mode == "empty-keys" else self.jwks()).encode()
        elif path == TOKEN_PATH:
            status, document = self._token(handler, parse_qs(parts.query))
            return self._send(handler, status, json.dumps(document).encode(), "application/json")
        else:
            return self._send(handler, 404, b"not found", "text/plain")
        if mode == "drip":
            return self._drip(handler, body)
        self._send(handler, 200, body, "application/json")

    def _token(
        self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        scheme, _, supplied = handler.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or supplied.strip() != self.request_token:
            return 401, {"message": "Bad credentials"}
        audience = (query.get("audience") or [self.default_audience or ""])[0]
        if not audience:
            return 400, {"message": "audience required"}
        self.last_audience = audience
        return 200, {"count": 1, "value": self.token_for(audience)}

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:  # the client gave up: that is the point of several modes
            pass

    def _send_huge(self, handler: BaseHTTPRequestHandler, *, sized: bool) -> None:
        size = 10 * 1024 * 1024
        chunk = b" " * 65536
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            if sized:
                handler.send_header("Content-Length", str(size))
            else:
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            for _ in range(size // len(chunk)):
                handler.wfile.write(chunk)
        except OSError:
            pass

    def _drip(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            for byte in body:
                if self._release.wait(0.2):
                    return
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
        except OSError:
            pass


class CountingServer:
    """A server that must never be contacted (targets of jku/x5u headers): counts requests."""

    def __init__(self) -> None:
        self.requests = 0
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                counter.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"keys": []}')

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
