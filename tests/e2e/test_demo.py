"""`bash scripts/demo.sh` end to end: TLS index, dev identity provider, uv publish, pip install."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.server import REPO_ROOT, free_port

from .conftest import run


def test_demo_publishes_and_installs(client_env, tmp_path: Path) -> None:
    port = free_port()
    result = run(
        [
            "bash",
            "scripts/demo.sh",
            "--once",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        env=client_env,
        cwd=REPO_ROOT,
        timeout=240,
    )
    assert result.returncode == 0, result.output
    for step in ("migrate", "add-issuer", "add-publisher", "uv publish", "pip install"):
        assert step in result.stdout, result.output
    assert "Successfully installed hello-index-0.1.0" in result.stdout
    assert "import hello_index -> __version__ == '0.1.0'" in result.stdout
    assert f"https://127.0.0.1:{port}/admin/trusted_publishing/auditevent/" in result.stdout
    assert "::add-mask::" not in result.output  # no minted token echoed
    # The dev issuer's key is kept for the next run.
    assert (tmp_path / "demo" / "devidp-key.pem").exists()


def test_demo_fails_clearly_when_the_port_is_taken(client_env, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(
            [
                "bash",
                "scripts/demo.sh",
                "--once",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "demo"),
            ],
            env=client_env,
            cwd=REPO_ROOT,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
