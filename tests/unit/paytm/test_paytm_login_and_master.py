"""Paytm login helpers (redirect parsing, token expiry) and the security-master parser."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from marketpulse.emulators.paytm.core import make_jwt
from marketpulse.feeds.paytm.auth import PaytmLoginError, extract_request_token, token_expiry
from marketpulse.feeds.paytm.instruments import ScripRow, encode_rows, parse_master
from marketpulse.feeds.simulator.trading_calendar import IST


def test_the_request_token_comes_from_the_redirect_url_or_as_given() -> None:
    url = "https://example.org/cb?success=true&requestToken=abc123XYZ&state=n1"
    assert extract_request_token(url, "n1") == "abc123XYZ"
    assert extract_request_token("  abc123XYZ ") == "abc123XYZ"


@pytest.mark.parametrize(
    ("text", "message"),
    [("https://x/cb?success=false&requestToken=a1b2c3", "did not complete"),
     ("https://x/cb?requestToken=a1b2c3&state=other", "not the 'n1'"),
     ("https://x/cb?state=n1", "no requestToken"), ("a b", "not a request token")],
)  # fmt: skip
def test_a_redirect_that_is_not_this_logins_answer_is_refused(text: str, message: str) -> None:
    with pytest.raises(PaytmLoginError, match=message):
        extract_request_token(text, "n1")


def test_tokens_expire_at_their_exp_or_else_at_23_59_59_ist_the_same_day() -> None:
    morning = datetime(2024, 7, 15, 9, 0, tzinfo=IST).timestamp()
    midnight = datetime(2024, 7, 15, 23, 59, 59, tzinfo=IST).timestamp()
    assert token_expiry("not-a-jwt", morning) == midnight
    assert token_expiry(make_jwt("public", midnight), morning) == int(midnight)


def test_the_security_master_maps_rows_to_canonical_symbols_with_collision_free_tokens() -> None:
    rows = [
        ScripRow(13, "NSE", "INDEX", "NIFTY 50", "Nifty 50"),
        ScripRow(13, "NSE", "EQUITY", "ABB", "ABB India, Ltd", "EQ"),
        ScripRow(14, "NSE", "EQUITY", "ABB", "ABB India, Ltd", "BE"),
        ScripRow(51, "BSE", "INDEX", "SENSEX", "S&P BSE Sensex"),
        ScripRow(500002, "BSE", "EQUITY", "ABB", "ABB India, Ltd", "A"),
        ScripRow(43210, "NSE", "OPTION", "NIFTY", "", expiry=date(2025, 7, 31), strike=24500.0,
                 option_type="CE", lot_size=75),
        ScripRow(35001, "NSE", "FUTURE", "BANKNIFTY", "", expiry=date(2025, 7, 31)),
    ]  # fmt: skip
    parsed = parse_master(encode_rows(rows))
    got = {r.token: (r.symbol, r.exchange) for r in parsed.records}
    assert got == {
        "NSE:13:INDEX": ("NIFTY50.NSE_INDEX", "NSE_INDEX"),
        "NSE:13:EQUITY": ("ABB.NSE", "NSE"),
        "BSE:51:INDEX": ("SENSEX.BSE_INDEX", "BSE_INDEX"),
        "BSE:500002:EQUITY": ("ABB.BSE", "BSE"),
        "NSE:43210:OPTION": ("NIFTY31JUL2524500CE.NFO", "NFO"),
        "NSE:35001:FUTURE": ("BANKNIFTY31JUL25FUT.NFO", "NFO"),
    }
    assert parsed.skipped == {"NSE cash series other than EQ": 1}
    assert next(r for r in parsed.records if r.token == "NSE:13:EQUITY").name == "ABB India, Ltd"


def test_a_master_without_the_needed_columns_names_what_it_found() -> None:
    with pytest.raises(ValueError, match=r"lacks the columns security_id.*header is foo, bar"):
        parse_master("foo,bar\n1,2\n")
