"""Login helpers: token expiry at 06:00 IST, the checksum, reading the redirect URL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from marketpulse.feeds.kite.auth import (
    KiteLoginError,
    checksum,
    extract_request_token,
    login_url,
    token_expiry,
)
from marketpulse.feeds.simulator.trading_calendar import IST


def ist(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=IST).timestamp()


@pytest.mark.parametrize(
    ("login", "expires"),
    [
        ("2024-01-15T09:30:00", "2024-01-16T06:00:00"),  # a trading morning → next morning
        ("2024-01-15T23:59:59", "2024-01-16T06:00:00"),
        ("2024-01-16T02:00:00", "2024-01-16T06:00:00"),  # after midnight, before the flush
        ("2024-01-16T05:59:59", "2024-01-16T06:00:00"),
        ("2024-01-16T06:00:00", "2024-01-17T06:00:00"),  # at the flush: a full day
        ("2024-02-28T18:00:00", "2024-02-29T06:00:00"),  # leap day
        ("2024-12-31T20:00:00", "2025-01-01T06:00:00"),  # year end
        ("2024-01-19T16:00:00", "2024-01-20T06:00:00"),  # Friday → Saturday, not Monday
    ],
)
def test_tokens_expire_at_the_next_6am_in_india(login: str, expires: str) -> None:
    assert token_expiry(ist(login)) == ist(expires)


def test_expiry_does_not_depend_on_the_zone_the_login_time_is_written_in() -> None:
    # 23:00 UTC on the 15th is 04:30 IST on the 16th: the token dies 90 minutes later.
    late_utc = datetime(2024, 1, 15, 23, 0, tzinfo=UTC).timestamp()
    assert token_expiry(late_utc) == datetime(2024, 1, 16, 0, 30, tzinfo=UTC).timestamp()
    # 01:00 UTC is 06:30 IST, already past that day's flush.
    early_utc = datetime(2024, 1, 16, 1, 0, tzinfo=UTC).timestamp()
    assert token_expiry(early_utc) == ist("2024-01-17T06:00:00")


def test_checksum_is_sha256_of_key_token_and_secret_concatenated() -> None:
    want = hashlib.sha256(b"key123tok456sec789").hexdigest()
    assert checksum("key123", "tok456", "sec789") == want
    assert len(want) == 64 and want == want.lower()


def test_login_url_carries_the_version_and_the_api_key() -> None:
    assert login_url("https://kite.zerodha.com/connect/login", "ab c") == (
        "https://kite.zerodha.com/connect/login?v=3&api_key=ab+c"
    )


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/cb?action=login&type=login&status=success&request_token=Ab12Cd34",
        "  https://example.com/cb?request_token=Ab12Cd34  ",
        "request_token=Ab12Cd34&action=login&status=success",
        "Ab12Cd34",
    ],
)
def test_the_request_token_is_read_from_a_redirect_url_or_taken_as_is(text: str) -> None:
    assert extract_request_token(text) == "Ab12Cd34"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("https://example.com/cb?status=cancelled", "status=cancelled"),
        ("https://example.com/cb?action=login", "has no request_token"),
        ("not a token!", "is not a request_token"),
    ],
)
def test_unusable_input_says_what_to_paste(text: str, message: str) -> None:
    with pytest.raises(KiteLoginError, match=message):
        extract_request_token(text)
