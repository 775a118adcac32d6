"""The server under test is the one CI means to test (backends), and answers like PyPI."""

from __future__ import annotations

import os


def test_server_runs_on_the_configured_backends(agent) -> None:
    backends = agent(
        "execute",
        code=(
            "from django.db import connection\n"
            "from django.core.cache import caches\n"
            "result = [connection.vendor, type(caches['default']).__name__]\n"
        ),
    )
    expect_db = (
        "postgresql"
        if os.environ.get("DATABASE_URL", "").startswith(("postgres", "pgsql"))
        else "sqlite"
    )
    assert backends[0] == expect_db
    if os.environ.get("CACHE_URL", "").startswith("redis"):
        assert backends[1] == "RedisCache"


def test_simple_api_over_tls(index, agent, unique) -> None:
    name = f"Served_{unique}"
    agent("create_project", name=name)
    status, headers, body = index.get(f"/simple/{name}/")  # redirected to the normalised URL
    assert status == 200
    assert headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
    assert b'"name": "served-' in body
    status, headers, body = index.get("/simple/", accept="text/html")
    assert headers["Content-Type"].startswith("text/html")
    assert f'<a href="/simple/served-{unique}/">{name}</a>'.encode() in body
