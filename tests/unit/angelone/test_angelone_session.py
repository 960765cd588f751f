"""Sessions and keys: credentials, expiry, segment routing of tokens, REST answer classification."""

from __future__ import annotations

import os
import stat
import time as time_
from datetime import datetime, time
from pathlib import Path

import httpx
import pytest

from marketpulse.credentials import CredentialsError, CredentialStore
from marketpulse.feeds.angelone.auth import SessionTokens, save_session, totp_now
from marketpulse.feeds.angelone.instruments import (
    Directory,
    SegmentError,
    keys_for,
    parse_segment,
)
from marketpulse.feeds.angelone.rest import (
    RateLimitedError,
    ServerError,
    SmartApiError,
    read_envelope,
)
from marketpulse.feeds.angelone.session import bare_jwt, load_session, session_expiry
from marketpulse.feeds.base import FeedAuthError
from marketpulse.feeds.http import RateLimiter
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.model import Tick
from marketpulse.subscriptions import TrackedSymbol

# --------------------------------------------------------------------------- sessions


def test_a_login_saves_the_session_privately_until_the_next_midnight_ist(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials.json", env={})
    login_at = time_.time()
    expires = save_session(store, "key", "T1", SessionTokens("jwt", "feed", "refresh"), login_at)
    assert expires == session_expiry(login_at)
    late = datetime(2024, 1, 15, 22, 30, tzinfo=IST).timestamp()
    assert datetime.fromtimestamp(session_expiry(late), IST) == datetime(2024, 1, 16, 0, 0,
                                                                          tzinfo=IST)  # fmt: skip
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    session = load_session(store)
    assert (session.api_key, session.client_code, session.jwt_token, session.feed_token) == (
        "key", "T1", "jwt", "feed")  # fmt: skip
    assert session.bearer == "Bearer jwt"


def test_the_cutoff_is_configurable_and_always_in_the_future() -> None:
    at_five = time(5, 0)
    before = datetime(2024, 1, 15, 4, 59, tzinfo=IST).timestamp()
    after = datetime(2024, 1, 15, 5, 0, tzinfo=IST).timestamp()
    assert datetime.fromtimestamp(session_expiry(before, at_five), IST).day == 15
    assert datetime.fromtimestamp(session_expiry(after, at_five), IST).day == 16


def test_an_expired_or_missing_session_says_how_to_log_in(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials.json", env={})
    with pytest.raises(CredentialsError, match="marketpulse login angelone"):
        load_session(store)
    save_session(store, "key", "T1", SessionTokens("jwt", "feed", "r"), 0.0)
    with pytest.raises(CredentialsError, match=r"expired.*marketpulse login angelone"):
        load_session(store)


def test_environment_variables_override_the_file_and_a_bearer_prefix_is_dropped(
    tmp_path: Path,
) -> None:
    env = {"ANGELONE_API_KEY": "k", "ANGELONE_CLIENT_CODE": "C", "ANGELONE_JWT_TOKEN": "Bearer j",
           "ANGELONE_FEED_TOKEN": "f"}  # fmt: skip
    session = load_session(CredentialStore(tmp_path / "none.json", env=env))
    assert (session.jwt_token, session.bearer) == ("j", "Bearer j")
    assert bare_jwt("bearer  abc ") == "abc"


def test_totp_codes_come_from_the_base32_secret_and_a_bad_secret_is_explained() -> None:
    code = totp_now("marketpulse emulator test secret aaa")  # spaces and case do not matter
    assert len(code) == 6 and code.isdigit()
    with pytest.raises(Exception, match="base32"):
        totp_now("not-base32!")


# --------------------------------------------------------------------------- keys and segments


def tracked(symbol: str, token: str, exchange: str, mode: str = "full") -> TrackedSymbol:
    return TrackedSymbol(symbol, "angelone", token, exchange, mode)


def test_tracked_instruments_are_subscribed_in_their_segment_and_indices_relabelled() -> None:
    directory = Directory()
    directory.track([tracked("RELIANCE.NSE", "2885", "NSE"),
                     tracked("NIFTY50.NSE_INDEX", "99926000", "NSE_INDEX"),
                     tracked("NIFTY30DEC25FUT.NFO", "43650", "NFO")])  # fmt: skip
    assert directory.group(["2885", "43650", "99926000"]) == {1: ["2885", "99926000"],
                                                             2: ["43650"]}  # fmt: skip
    ticks = [Tick("angelone", "99926000", "NSE", "ltp", 1.0),
             Tick("angelone", "2885", "NSE", "ltp", 1.0),
             Tick("angelone", "2885", "BSE", "ltp", 1.0)]  # fmt: skip
    labelled = directory.label(ticks)
    assert [(t.exchange, t.symbol) for t in labelled] == [
        ("NSE_INDEX", "NIFTY50.NSE_INDEX"), ("NSE", "RELIANCE.NSE"), ("BSE", None)]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "code", "token"),
    [("NFO|43650", 2, "43650"), ("2|43650", 2, "43650"), ("nse_fo|43650", 2, "43650"),
     ("CDS|1234", 13, "1234"), ("NSE_INDEX|99926000", 1, "99926000"), ("2885", 1, "2885")],
)  # fmt: skip
def test_qualified_keys_name_the_segment_and_plain_unknown_tokens_default_to_nse_cash(
    key: str, code: int, token: str
) -> None:
    listing = Directory().listing(key)
    assert (listing.exchange_type, listing.token) == (code, token)


def test_an_index_key_relabels_its_ticks_even_without_the_instrument_master() -> None:
    directory = Directory()
    directory.listing("NSE_INDEX|99926000")
    (tick,) = directory.label([Tick("angelone", "99926000", "NSE", "ltp", 1.0)])
    assert (tick.exchange, tick.symbol) == ("NSE_INDEX", None)


def test_an_unknown_segment_is_a_clear_error() -> None:
    with pytest.raises(SegmentError, match="NFO"):
        parse_segment("XYZ")


def test_a_key_with_an_unknown_segment_is_left_out_instead_of_failing_every_resubscribe(
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = Directory()
    assert directory.group(["XYZ|1", "2885"]) == {1: ["2885"]}
    assert directory.group(["XYZ|1"]) == {}
    assert caplog.text.count("not subscribing 'XYZ|1'") == 1


def test_a_token_listed_in_two_segments_gets_qualified_keys() -> None:
    items = [tracked("A.NSE", "500", "NSE"), tracked("B.BSE", "500", "BSE"),
             tracked("C.NSE", "7", "NSE")]  # fmt: skip
    assert [t.token for t in keys_for(items)] == ["NSE|500", "BSE|500", "7"]
    directory = Directory()
    directory.track(keys_for(items))
    assert directory.group(["NSE|500", "BSE|500"]) == {1: ["500"], 3: ["500"]}


# --------------------------------------------------------------------------- REST answers

URL = "https://apiconnect.angelone.in/rest/x"


def answer(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", URL), **kwargs)  # type: ignore[arg-type]


def test_a_successful_envelope_yields_its_data() -> None:
    ok = answer(200, json={"status": True, "message": "SUCCESS", "errorcode": "", "data": [1]})
    assert read_envelope(ok, "/x") == [1]


@pytest.mark.parametrize(
    "response",
    [answer(401, json={"success": False, "message": "Invalid Token", "errorCode": "AG8001",
                       "data": ""}),
     answer(200, json={"status": False, "message": "Token Expired", "errorcode": "AG8002",
                       "data": None}),
     answer(403, text="Forbidden")],
)  # fmt: skip
def test_rejected_sessions_are_auth_errors_with_the_login_hint(response: httpx.Response) -> None:
    with pytest.raises(FeedAuthError, match="marketpulse login angelone"):
        read_envelope(response, "/x")


@pytest.mark.parametrize(
    "response",
    [answer(429, text="Too Many Requests"),
     answer(403, text="Access denied because of exceeding access rate"),
     answer(200, json={"status": False, "message": "Access denied because of exceeding access "
                       "rate", "errorcode": "", "data": None})],
)  # fmt: skip
def test_rate_limits_are_recognised_whatever_their_shape(response: httpx.Response) -> None:
    with pytest.raises(RateLimitedError):
        read_envelope(response, "/x")


def test_server_errors_are_retryable_and_other_refusals_keep_the_apis_code() -> None:
    with pytest.raises(ServerError):
        read_envelope(answer(502, text="Bad Gateway"), "/x")
    refused = answer(200, json={"status": "false", "message": "Invalid client code or PIN",
                                "errorcode": "AB1007", "data": "null"})  # fmt: skip
    with pytest.raises(SmartApiError, match="AB1007") as caught:
        read_envelope(refused, "/x")
    assert caught.value.errorcode == "AB1007"
    assert not isinstance(caught.value, RateLimitedError | ServerError)


async def test_the_rate_limiter_spaces_requests_evenly() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 9))
        now[0] += seconds

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        await limiter.acquire()
    assert slept == [0.25, 0.25, 0.25]
    now[0] += 10.0  # an idle limiter does not bank credit for a burst
    await limiter.acquire()
    await limiter.acquire()
    assert slept == [0.25, 0.25, 0.25, 0.25]
