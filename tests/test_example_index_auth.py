"""Password logins on the example index's ``/legacy/``: credentials that are not ASCII, and the
throttle on failed logins (per account and per client address, in the shared cache)."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from example_project.index.models import File, Project
from tests.test_example_index import INTEGRATION, basic, upload
from tests.test_example_index import _minted as minted
from trusted_publishing.conf import override_tp_settings
from trusted_publishing.models import GitHubPublisher, TrustedIssuer

LOCKED_OUT = "There have been too many unsuccessful login attempts."


@pytest.fixture(autouse=True)
def _index(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    with override_tp_settings(HOST_INTEGRATION=INTEGRATION):
        yield


@pytest.fixture
def alice(db: Any) -> Any:
    return get_user_model().objects.create_user("alice", password="alice-pw", is_staff=True)


def login(client: Any, header: str, address: str = "198.51.100.1") -> Any:
    """A request that stops right after authentication (an unknown action: 400 once in)."""
    return client.post("/legacy/", {":action": "nothing"}, HTTP_AUTHORIZATION=header,
                       REMOTE_ADDR=address)


def raw_basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode("ascii")


# --- item 12: non-ASCII credentials ----------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [
        "Basic älice:pässword",  # not base64 at all: non-ASCII characters in the header
        "Basic " + base64.b64encode(b"alice:pw").decode() + "é",
        "Basic ÿÿÿÿ",
        "Basic \u2603",  # a character outside Latin-1, as a server might pass it on
    ],
    ids=["latin1-text", "trailing-non-ascii", "high-latin1", "snowman"],
)
def test_non_ascii_basic_header_is_a_401_not_a_500(client: Any, alice: Any, header: str) -> None:
    response = login(client, header)
    assert response.status_code == 401
    assert response.reason_phrase.startswith("Invalid or non-existent authentication")
    assert "not base64-encoded 'username:password'" in response.content.decode()
    assert response["WWW-Authenticate"] == 'Basic realm="upload"'


def test_non_ascii_basic_header_through_the_upload_form(client: Any, alice: Any) -> None:
    response = upload(client, "demo-1.0.tar.gz", name="demo", version="1.0",
                      auth="Basic pässwörd")
    assert response.status_code == 401
    assert not File.objects.exists()


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_non_ascii_passwords_work_in_either_encoding(
    client: Any, db: Any, encoding: str
) -> None:
    """uv sends UTF-8; requests (twine) sends Latin-1. Both name the same password."""
    get_user_model().objects.create_user("jürgen", password="pässwörd", is_staff=True)
    ok = login(client, raw_basic("jürgen:pässwörd".encode(encoding)))
    assert ok.status_code == 400, ok.content  # authenticated; the action is what's wrong
    wrong = login(client, raw_basic("jürgen:passwort".encode(encoding)))
    assert wrong.status_code == 401


def test_basic_without_a_colon_is_a_clear_401(client: Any, alice: Any) -> None:
    response = login(client, raw_basic(b"alice-without-colon"))
    assert response.status_code == 401
    assert "not base64-encoded 'username:password'" in response.reason_phrase


# --- item 15: throttling failed password logins ----------------------------------------------
def assert_locked_out(response: Any) -> int:
    assert response.status_code == 429, (response.status_code, response.content)
    assert response["Content-Type"].startswith("text/plain")
    assert response.reason_phrase.startswith(LOCKED_OUT)
    assert response.content.decode().startswith(LOCKED_OUT)
    assert "Please try again later." in response.content.decode()
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 300
    return retry_after


def test_failed_logins_are_throttled_per_account(client: Any, alice: Any) -> None:
    for attempt in range(10):  # each from another address: only the account is counted
        assert login(client, basic("alice", f"guess-{attempt}"), f"198.51.100.{attempt}") \
            .status_code == 401
    # Even the right password is refused now (and no hash is computed), from anywhere.
    locked = login(client, basic("alice", "alice-pw"), "203.0.113.99")
    assert_locked_out(locked)
    assert "locked out for 5 minutes" in locked.reason_phrase
    # Other accounts are not affected.
    get_user_model().objects.create_user("bob", password="bob-pw", is_staff=True)
    assert login(client, basic("bob", "bob-pw"), "203.0.113.99").status_code == 400


def test_failed_logins_are_throttled_per_address(client: Any, alice: Any) -> None:
    for attempt in range(10):  # ten different accounts from one address
        assert login(client, basic(f"user{attempt}", "guess"), "192.0.2.7").status_code == 401
    assert_locked_out(login(client, basic("alice", "alice-pw"), "192.0.2.7"))
    assert_locked_out(login(client, basic("nobody", "guess"), "192.0.2.7"))
    # The same account from another address is fine.
    assert login(client, basic("alice", "alice-pw"), "192.0.2.8").status_code == 400


def test_successful_logins_are_not_counted(client: Any, alice: Any) -> None:
    for _ in range(25):
        assert login(client, basic("alice", "alice-pw")).status_code == 400
    for attempt in range(9):
        assert login(client, basic("alice", f"guess-{attempt}")).status_code == 401
    assert login(client, basic("alice", "alice-pw")).status_code == 400
    assert login(client, basic("alice", "guess-10")).status_code == 401
    assert_locked_out(login(client, basic("alice", "alice-pw")))


def test_minted_tokens_are_not_throttled(
    client: Any, alice: Any, mint: Any, github_issuer: Any
) -> None:
    publisher = GitHubPublisher.objects.create(
        issuer=TrustedIssuer.objects.get(url=github_issuer.url), repository_owner="acme",
        repository_name="widgets", workflow_filename="release.yml",
    )
    publisher.add_projects(["widgets"])
    Project.objects.create(name="widgets")
    address = "192.0.2.50"
    for attempt in range(12):
        login(client, basic("alice", f"guess-{attempt}"), address)
    assert_locked_out(login(client, basic("alice", "alice-pw"), address))
    # A CI job behind the same address still publishes with its minted token.
    token = basic("__token__", minted(mint, github_issuer))
    response = upload(client, "widgets-1.0.tar.gz", name="widgets", version="1.0", auth=token,
                      environ={"REMOTE_ADDR": address})
    assert response.status_code == 200, response.content
    # Nor do wrong minted tokens or foreign __token__ values count as password failures.
    for _ in range(12):
        assert login(client, basic("__token__", "pypi-wrong"), "192.0.2.51").status_code == 401
    get_user_model().objects.create_user("bob", password="bob-pw", is_staff=True)
    assert login(client, basic("bob", "bob-pw"), "192.0.2.51").status_code == 400


def test_throttle_is_configurable_and_expires(client: Any, alice: Any, settings: Any) -> None:
    settings.INDEX_LOGIN_MAX_FAILURES = 2
    settings.INDEX_LOGIN_FAILURE_WINDOW = 1
    assert login(client, basic("alice", "x")).status_code == 401
    assert login(client, basic("alice", "y")).status_code == 401
    assert assert_locked_out(login(client, basic("alice", "alice-pw"))) == 1
    time.sleep(1.2)
    assert login(client, basic("alice", "alice-pw")).status_code == 400


def test_throttle_can_be_turned_off(client: Any, alice: Any, settings: Any) -> None:
    settings.INDEX_LOGIN_MAX_FAILURES = 0
    for attempt in range(15):
        assert login(client, basic("alice", f"guess-{attempt}")).status_code == 401
    assert login(client, basic("alice", "alice-pw")).status_code == 400
