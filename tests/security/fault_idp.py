"""A real OIDC identity provider on 127.0.0.1 whose failures the tests choose.

It serves ``/.well-known/openid-configuration`` and ``/jwks`` for a :class:`TestIssuer` (whose
``url`` must be this server's URL) from a threaded HTTP server, counts every request per path,
and misbehaves on demand: set :attr:`FaultIdP.mode` to one of :data:`MODES`.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from trusted_publishing.testing import TestIssuer

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"

#: What the server does (``ok`` = behave). Modes ending in ``-jwks`` only break the JWKS
#: endpoint, the discovery document stays correct.
MODES = (
    "ok",
    "down",  # accept the connection, then close it without answering
    "slow",  # answer only after `slow_seconds`
    "drip",  # send headers at once, then the body one byte every 0.2 s
    "500",
    "html",  # 200 with an HTML error page
    "huge",  # 10 MB body with Content-Length
    "huge-unsized",  # 10 MB body, no Content-Length (connection close)
    "redirect",  # 302 to a path that would serve valid keys
    "wrong-issuer",  # discovery names another issuer
    "jwks-link-local",  # discovery points jwks_uri at a cloud metadata address
    "jwks-file",  # discovery points jwks_uri at file:///etc/passwd
    "500-jwks",
    "empty-keys",  # JWKS with no keys
    "not-object",  # JSON, but a list
)


class FaultIdP:
    def __init__(self, issuer_factory: Any = None) -> None:
        self.mode = "ok"
        self.slow_seconds = 2.0
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._release = threading.Event()  # wakes sleeping handlers at shutdown
        idp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                idp._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer: TestIssuer = (issuer_factory or TestIssuer)(self.url)
        #: Extra keys published next to the issuer's current one (e.g. before a rotation).
        self.extra_keys: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> FaultIdP:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FaultIdP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- observations -----------------------------------------------------------------------
    @property
    def jwks_fetches(self) -> int:
        return self.requests[JWKS_PATH]

    @property
    def discovery_fetches(self) -> int:
        return self.requests[DISCOVERY_PATH]

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- behaviour --------------------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.issuer.public_jwk(), *self.extra_keys]}

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.requests[path] += 1
        mode = self.mode
        is_jwks = path == JWKS_PATH
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
        if mode == "500" or (mode == "500-jwks" and is_jwks):
            return self._send(handler, 500, b"internal error", "text/plain")
        if mode == "html":
            return self._send(handler, 200, b"<html><body>Maintenance</body></html>", "text/html")
        if mode == "redirect":
            handler.send_response(302)
            handler.send_header("Location", f"{self.url}/elsewhere{path}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if mode in {"huge", "huge-unsized"}:
            return self._send_huge(handler, sized=mode == "huge")
        if mode == "not-object":
            return self._send(handler, 200, b"[1, 2, 3]", "application/json")

        if path in {DISCOVERY_PATH, f"/elsewhere{DISCOVERY_PATH}"}:
            document = self.issuer.discovery_document(jwks_uri=self.url + JWKS_PATH)
            if mode == "wrong-issuer":
                document["issuer"] = "https://token.actions.githubusercontent.com"
            elif mode == "jwks-link-local":
                document["jwks_uri"] = "http://169.254.169.254/latest/meta-data/keys"
            elif mode == "jwks-file":
                document["jwks_uri"] = "file:///etc/passwd"
            body = json.dumps(document).encode()
        elif path in {JWKS_PATH, f"/elsewhere{JWKS_PATH}"}:
            body = json.dumps({"keys": []} if mode == "empty-keys" else self.jwks()).encode()
        else:
            return self._send(handler, 404, b"not found", "text/plain")
        if mode == "drip":
            return self._drip(handler, body)
        self._send(handler, 200, body, "application/json")

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
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                counter.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"keys": []}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
