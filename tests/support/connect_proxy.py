"""A real HTTP ``CONNECT`` proxy on 127.0.0.1 for tests: counts tunnels and relays bytes.

:class:`ConnectProxy` answers ``CONNECT host:port HTTP/1.1`` by opening a TCP connection to the
target (optionally through its own ``hosts`` table, so a test can show that the *proxy*, not the
client, resolves a name), replies ``200 Connection established`` and then copies bytes both ways
until either side closes. TLS runs end to end through the tunnel: the proxy sees only
ciphertext. Anything but ``CONNECT`` is answered ``405``. Every tunnel target is recorded in
:attr:`ConnectProxy.connects`, in order.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from typing import Any

_MAX_HEAD = 16 * 1024


class ConnectProxy:
    def __init__(self, hosts: dict[str, str] | None = None) -> None:
        #: name -> address the proxy connects to instead of resolving the name itself
        self.hosts = dict(hosts or {})
        #: "host:port" of every CONNECT request, in order (refused ones too)
        self.connects: list[str] = []
        #: request lines of everything that was not a CONNECT
        self.other_requests: list[str] = []
        self.bytes_relayed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"connect-proxy-{self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> ConnectProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ConnectProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- proxying ---------------------------------------------------------------------------
    def _handle(self, client: socket.socket) -> None:
        client.settimeout(10)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
                if len(head) > _MAX_HEAD:
                    return
        except OSError:
            return
        head, _, early = head.partition(b"\r\n\r\n")
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or parts[0].upper() != "CONNECT":
            with self._lock:
                self.other_requests.append(request_line)
            self._reply(client, b"405 Method Not Allowed")
            return
        target = parts[1]
        with self._lock:
            self.connects.append(target)
        host, _, port_text = target.rpartition(":")
        host = host.strip("[]")
        try:
            port = int(port_text)
            upstream = socket.create_connection((self.hosts.get(host, host), port), timeout=5)
        except (OSError, ValueError):
            self._reply(client, b"502 Bad Gateway")
            return
        with upstream:
            self._reply(client, b"200 Connection established")
            if early:
                upstream.sendall(early)
            self._relay(client, upstream)

    @staticmethod
    def _reply(client: socket.socket, status: bytes) -> None:
        try:
            client.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        peers: dict[Any, socket.socket] = {client: upstream, upstream: client}
        while not self._stop.is_set():
            try:
                readable, _, broken = select.select(list(peers), [], list(peers), 0.2)
            except (OSError, ValueError):
                return
            if broken:
                return
            for source in readable:
                try:
                    data = source.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    peers[source].sendall(data)
                except OSError:
                    return
                with self._lock:
                    self.bytes_relayed += len(data)
