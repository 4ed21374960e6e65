"""Rate limits a key can keep: `keys create` and the key store refuse the others, a
stored key with such limits is refused rather than crashing calls, and failed
authentication is limited per peer address (both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from keyring import NOW, Keyring, keyring
from omnistock.client import ResourceExhaustedError, Retry, UnauthenticatedError
from omnistock.server.cli import main
from omnistock.server.domain.errors import InvalidArgument
from omnistock.server.domain.security import Role, new_key
from omnistock.server.domain.stock import Exposure
from omnistock.server.store.keys import keys as key_table
from sqlalchemy import update

AMS = "NL-AMS-01"


@pytest.fixture
def ring(database_url: str) -> Iterator[Keyring]:
    with keyring(database_url, auth_failure_burst=5, auth_failures_per_second=0.5) as ring:
        yield ring


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.0, 10), (-1.0, 10), (float("nan"), 10), (float("inf"), 10), (5.0, 0)]
)
def test_the_key_store_refuses_limits_no_bucket_can_keep(
    ring: Keyring, rate: float, burst: int
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ring.keys.create(
            "bad", [Role.READ], locations=None, exposure=Exposure.BANDED,
            rate_per_second=rate, burst=burst, now=NOW,
        )  # fmt: skip
    assert caught.value.reason == "INVALID_RATE_LIMIT"
    assert [k.principal.name for k in ring.keys.all()] == []


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-2.0, 1), (5.0, 0)])
def test_a_stored_key_with_bad_limits_is_refused_not_an_internal_error(
    ring: Keyring, rate: float, burst: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows written before limits were checked: each call is UNAUTHENTICATED, never
    INTERNAL (a rate of 0 divided by zero) nor a negative retry delay."""
    key = ring.key("old", Role.READ)
    assert ring.server.server is not None
    with ring.server.server.engine.begin() as connection:
        connection.execute(update(key_table).values(rate_per_second=rate, burst=burst))
    with ring.client(key, retry=Retry(attempts=1)) as client:
        for _ in range(3):
            with pytest.raises(UnauthenticatedError) as caught:
                list(client.list_locations())
            assert caught.value.reason == "API_KEY_INVALID"
    key_id = key.split("_")[1]
    assert any(
        f"key {key_id} (old) is refused" in r.getMessage() and r.levelname == "WARNING"
        for r in caplog.records
    )


def test_failed_authentication_is_limited_per_peer(ring: Keyring) -> None:
    outcomes = []
    for _ in range(12):
        with ring.client(new_key()[2], retry=Retry(attempts=1)) as stranger:
            try:
                list(stranger.list_locations())
            except (UnauthenticatedError, ResourceExhaustedError) as error:
                outcomes.append(error)
    assert [type(e) for e in outcomes[:5]] == [UnauthenticatedError] * 5
    assert all(isinstance(e, ResourceExhaustedError) for e in outcomes[5:])
    limited = outcomes[-1]
    assert limited.reason == "AUTH_RATE_LIMITED"
    assert limited.retry_after is not None and limited.retry_after.total_seconds() > 0


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--rate", "0"), ("--rate", "-1"), ("--rate", "nan"), ("--rate", "inf"), ("--burst", "0")],
)
def test_keys_create_refuses_bad_limits_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    database = ["--database-url", f"sqlite:///{tmp_path / 'keys.db'}"]
    code = main(["keys", *database, "create", "app", "--role", "read", flag, value])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"omnistock: {flag} must be ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "osk_" not in out
    # Nothing was made: not a key, not even the database (`keys list` says there is none).
    assert not (tmp_path / "keys.db").exists()
    assert main(["keys", *database, "list"]) == 1
    assert "no database at" in capsys.readouterr().err
