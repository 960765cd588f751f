"""Login helpers, token claims, symbol → topic mapping and the symbol-master parser."""

from __future__ import annotations

import hashlib
import time
from datetime import date

import pytest

from marketpulse.credentials import CredentialsError
from marketpulse.emulators.fyers.core import make_token
from marketpulse.emulators.fyers.listing import FyersListing
from marketpulse.feeds.fyers.auth import FyersLoginError, app_id_hash, extract_auth_code, login_url
from marketpulse.feeds.fyers.credentials import FyersCredentials, token_claims
from marketpulse.feeds.fyers.instruments import FyersSymbol, encode_rows, parse_master
from marketpulse.feeds.fyers.topics import TopicError, topics_for
from marketpulse.feeds.simulator import default_universe


def test_app_id_hash_is_sha256_of_app_id_colon_secret() -> None:
    assert app_id_hash("ABC-100", "s3cret") == hashlib.sha256(b"ABC-100:s3cret").hexdigest()
    assert len(app_id_hash("a", "b")) == 64 and app_id_hash("a", "b").islower()


def test_login_url_and_auth_code_extraction() -> None:
    url = login_url("https://api-t1.fyers.in", "ABC-100", "https://x.test/cb", "st")
    assert url.startswith("https://api-t1.fyers.in/api/v3/generate-authcode?client_id=ABC-100")
    assert "response_type=code" in url
    redirect = "https://x.test/cb?s=ok&code=200&auth_code=eyJabc.def&state=st"
    assert extract_auth_code(redirect) == "eyJabc.def"
    assert extract_auth_code("  eyJabc.def ") == "eyJabc.def"
    with pytest.raises(FyersLoginError, match="no auth_code"):
        extract_auth_code("https://x.test/cb?s=ok&state=st")
    with pytest.raises(FyersLoginError, match="s=error"):
        extract_auth_code("https://x.test/cb?s=error&auth_code=x")


def test_token_claims_read_hsm_key_and_expiry_with_or_without_the_app_id_prefix() -> None:
    token = make_token("k123", 2_000_000_000)
    assert token_claims(token).hsm_key == "k123"
    assert token_claims("APP-100:" + token).expires_at == 2_000_000_000
    with pytest.raises(CredentialsError, match="not a JWT"):
        token_claims("nonsense")
    with pytest.raises(CredentialsError, match="no hsm_key"):
        token_claims("a.eyJleHAiOjF9.c")


def test_an_expired_token_gives_an_actionable_error() -> None:
    credentials = FyersCredentials("APP-100", make_token("k", time.time() - 10))
    with pytest.raises(CredentialsError, match="marketpulse login fyers"):
        credentials.check_fresh()


def test_symbols_map_to_scrip_depth_and_index_topics() -> None:
    sbin = topics_for("NSE:SBIN-EQ", "10100000003045")
    assert (sbin.scrip, sbin.depth) == ("sf|nse_cm|3045", "dp|nse_cm|3045")
    assert sbin.for_mode("full") == ["dp|nse_cm|3045", "sf|nse_cm|3045"]
    assert sbin.for_mode("quote") == ["sf|nse_cm|3045"]
    assert topics_for("NSE:NIFTY24OCTFUT", "101124103135003").scrip == "sf|nse_fo|35003"
    nifty = topics_for("NSE:NIFTY50-INDEX", "101000000026000")
    assert (nifty.scrip, nifty.depth) == ("if|nse_cm|Nifty 50", None)
    assert topics_for("BSE:SENSEX-INDEX", "121000000001").scrip == "if|bse_cm|SENSEX"
    assert topics_for("NSE:NEWIDX-INDEX", "101000000099").scrip == "if|nse_cm|NEWIDX"
    assert topics_for("NSE:X-INDEX", "10100000009", {"NSE:X-INDEX": "Ex"}).scrip == "if|nse_cm|Ex"
    with pytest.raises(TopicError):
        topics_for("NSE:Q-EQ", "99990000001")


def test_the_emulator_symbol_masters_parse_to_canonical_symbols() -> None:
    listing = FyersListing(default_universe(date(2025, 12, 1)))
    parsed = parse_master(listing.csv("NSE_CM"))
    parse_master(listing.csv("NSE_FO"), parsed)
    parse_master(listing.csv("BSE_CM"), parsed)
    by_symbol = {r.symbol: r for r in parsed.records}
    assert parsed.skipped == {} and len(parsed.records) == len(listing.listings)
    assert by_symbol["SBIN.NSE"].token == "NSE:SBIN-EQ"
    assert by_symbol["NIFTY50.NSE_INDEX"].token == "NSE:NIFTY50-INDEX"
    assert by_symbol["SENSEX.BSE_INDEX"].token == "BSE:SENSEX-INDEX"
    future = next(r for r in parsed.records if r.instrument_type == "FUT")
    assert (
        future.exchange == "NFO" and future.expiry is not None and future.symbol.endswith("FUT.NFO")
    )


def test_unusable_master_rows_are_skipped_by_reason() -> None:
    row = FyersSymbol("10100000001", "X", 0, 1, 0.05, "", "", "", 0, "NSE:X-BE", 10, 10, "1")
    text = encode_rows([row]) + "garbage\n1,2,3,4,5,6,7,8,9,NSE:Y-EQ,ten,10,1\n"
    parsed = parse_master(text)
    assert parsed.records == []
    assert parsed.skipped == {"NSE series BE": 1, "row with fewer than 13 columns": 1,
                              "unreadable row": 1}  # fmt: skip
