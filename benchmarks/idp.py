"""A counting identity provider on loopback: OIDC discovery + JWKS for one TestIssuer.

The benchmark registers its issuer with ``key_source=discovery`` (as GitHub and GitLab are in
production), so the app really fetches keys over HTTP on a cold cache. Every request is counted;
the benchmark asserts that the steady state makes none.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from trusted_publishing.testing import TestIssuer


class CountingIdP:
    def __init__(self, kid: str = "bench-key") -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self.issuer = TestIssuer(self.url, kid=kid)
        self._documents = {
            "/.well-known/openid-configuration": json.dumps(
                self.issuer.discovery_document(f"{self.url}/.well-known/jwks")
            ).encode(),
            "/.well-known/jwks": json.dumps(self.issuer.jwks()).encode(),
        }
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with idp._lock:
                    idp.requests += 1
                body = idp._documents.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
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
