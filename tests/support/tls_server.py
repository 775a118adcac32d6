"""TLS for the test suite's loopback servers: :class:`HttpsIdP` is :class:`FakeIdP` over https.

The certificate comes from a throwaway ``trustme`` CA; a test trusts it explicitly
(``JWKS_CA_BUNDLE``, or ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` when it tests the
environment). Names other than 127.0.0.1 (``idp.example.test``, ``accounts.google.com``) reach
the server through a patched ``socket.getaddrinfo`` or a proxy's host table.
"""

from __future__ import annotations

import socketserver
import ssl
from typing import Any

import trustme

from trusted_publishing.testing import TestIssuer

from .idp import FakeIdP


def serve_over_tls(server: socketserver.TCPServer, ca: trustme.CA, *names: str) -> None:
    """Wrap ``server``'s listening socket (before it starts serving) with a leaf of ``ca``.

    The handshake happens in the handler thread on first read (``do_handshake_on_connect`` is
    off), so a client that never completes it cannot stall the accept loop.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1", "localhost"))).configure_cert(context)
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )


class HttpsIdP(FakeIdP):
    """A :class:`FakeIdP` over https on 127.0.0.1.

    ``base_url`` is where it says it lives (default ``https://127.0.0.1:<port>``): the issuer URL
    and the ``jwks_uri`` of its discovery document are built on it; ``issuer_url`` overrides the
    issuer URL alone (an issuer whose keys live on another host, like Google's). ``jwks_uri``
    overrides the discovery document's ``jwks_uri``. ``names`` are the certificate's names.
    """

    def __init__(
        self,
        ca: trustme.CA,
        *,
        names: tuple[str, ...] = ("127.0.0.1",),
        base_url: str | None = None,
        issuer_url: str | None = None,
        jwks_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._base_url = base_url
        self.jwks_uri_override = jwks_uri
        super().__init__(
            issuer_factory=lambda url: TestIssuer(issuer_url or url),
            **kwargs,
        )
        assert self._server is not None
        serve_over_tls(self._server, ca, *names)

    @property
    def url(self) -> str:
        return self._base_url or f"https://127.0.0.1:{self.port}"

    def discovery(self) -> dict[str, Any]:
        document = super().discovery()
        if self.jwks_uri_override is not None and self.mode == "ok":
            document["jwks_uri"] = self.jwks_uri_override
        return document
