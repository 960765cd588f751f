"""The Paytm feed inside marketpulse: login, instrument sync, the running service, REST quotes
and record/replay, all against the emulator with real Redis and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from marketpulse.config import Settings
from marketpulse.credentials import CredentialStore
from marketpulse.emulators.paytm import TEST_API_KEY, TEST_API_SECRET
from marketpulse.feeds.base import FeedAuthError
from marketpulse.feeds.paytm.feed import SPEC
from marketpulse.feeds.registry import feed_spec
from marketpulse.store.database import create_pool
from marketpulse.store.instruments import resolve_instruments, sync_instruments
from marketpulse.subscriptions import TrackedSymbol
from tests.integration.kite.helpers import invoke_cli
from tests.integration.kite.test_kite_service import _eventually
from tests.integration.paytm.helpers import RunningEmulator, paytm_emulator
from tests.support.service import running_service


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=2)
    yield pool
    await pool.close()


def _configured(settings: Settings, paytm: RunningEmulator, subscribe: list[str]) -> Settings:
    return settings.model_copy(
        update={
            "feeds": ["paytm"], "subscribe": subscribe, "subscribe_mode": "full",
            "paytm_ws_url": paytm.ws_url, "paytm_api_url": paytm.api_url,
            "paytm_login_url": paytm.login_url, "paytm_security_master_url": paytm.master_url,
        }
    )  # fmt: skip


async def test_login_follows_the_redirect_and_saves_three_tokens_until_midnight_ist(
    tmp_path: Path,
) -> None:
    async with paytm_emulator() as paytm, httpx.AsyncClient() as http:
        redirect = await http.get(f"{paytm.login_url}?apiKey={TEST_API_KEY}&state=s1")
        location = redirect.headers["location"]
        env: dict[str, str | None] = {
            "MARKETPULSE_HOME": str(tmp_path), "PAYTM_API_URL": paytm.api_url,
            "PAYTM_LOGIN_URL": paytm.login_url, "PAYTM_API_KEY": TEST_API_KEY,
            "PAYTM_API_SECRET": TEST_API_SECRET, "PAYTM_ACCESS_TOKEN": None,
            "PAYTM_PUBLIC_ACCESS_TOKEN": None,
        }  # fmt: skip
        result = await invoke_cli(["login", "paytm", "--request-token", location], env)
        reused = await invoke_cli(["login", "paytm", "--request-token", location], env)
        tokens = paytm.emulator.tokens
    assert redirect.status_code == 302 and "requestToken=" in location
    assert result.exit_code == 0, result.output
    assert "merchant-login?apiKey=test-paytm-api-key&state=" in result.output
    entry = CredentialStore.in_home(tmp_path).entry("paytm")
    assert entry.values == {"api_key": TEST_API_KEY, "access_token": tokens.access,
                            "public_access_token": tokens.public,
                            "read_access_token": tokens.read}  # fmt: skip
    assert entry.expires_at is not None and int(entry.expires_at) % 86400 == 66599  # 18:29:59 UTC
    assert reused.exit_code == 1 and "Invalid or expired request_token" in reused.output


async def test_instruments_sync_keys_by_exchange_id_and_type_and_a_resync_changes_nothing(
    tmp_path: Path, database_url: str, pool: asyncpg.Pool
) -> None:
    env: dict[str, str | None] = {"DATABASE_URL": database_url, "MARKETPULSE_HOME": str(tmp_path)}
    async with paytm_emulator() as paytm:
        env["PAYTM_SECURITY_MASTER_URL"] = paytm.master_url
        first = await invoke_cli(["instruments", "sync", "--provider", "paytm"], env)
        again = await invoke_cli(["instruments", "sync", "--provider", "paytm"], env)
        count = len(paytm.emulator.listings)
        want = {s: paytm.key(s) for s in ("INFY.NSE", "NIFTY50.NSE_INDEX", "SENSEX.BSE_INDEX")}
    assert first.exit_code == 0, first.output
    assert f"paytm: {count} added, 0 changed, 0 unchanged, 0 removed, 0 collisions" in first.output
    assert f"paytm: 0 added, 0 changed, {count} unchanged, 0 removed" in again.output
    tracked = await resolve_instruments(pool, "paytm", [*want, "NSE:13:INDEX", "NSE:13:EQUITY"])
    assert {t.symbol: t.token for t in tracked[:3]} == want
    assert (
        want["NIFTY50.NSE_INDEX"] == "NSE:13:INDEX" and want["SENSEX.BSE_INDEX"] == "BSE:51:INDEX"
    )
    assert tracked[3].symbol == "NIFTY50.NSE_INDEX" and tracked[4].exchange == "NSE"


async def test_the_service_streams_paytm_ticks_to_the_quotes_api(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    symbols = ["INFY.NSE", "NIFTY50.NSE_INDEX", "SENSEX.BSE_INDEX"]
    async with paytm_emulator(rate=200) as paytm:
        paytm.save_tokens(settings.marketpulse_home)
        configured = _configured(settings, paytm, symbols)
        assert SPEC.instruments is not None and feed_spec("paytm") is SPEC
        await sync_instruments(pool, "paytm", await SPEC.instruments(configured, None))
        async with running_service(configured) as endpoints, httpx.AsyncClient() as http:
            url = f"{endpoints.http}/api/quotes?symbols={','.join(symbols)}"
            body = await _eventually(
                lambda: http.get(url),
                # the first answers may come from the REST fallback (mode quote) until the
                # live snapshot (mode full) exists
                lambda b: not b["missing"] and b["quotes"]["INFY.NSE"]["mode"] == "full",
            )
    quotes = body["quotes"]
    assert {s: q["source"] for s, q in quotes.items()} == dict.fromkeys(symbols, "paytm")
    assert quotes["SENSEX.BSE_INDEX"]["exchange"] == "BSE_INDEX"
    assert quotes["INFY.NSE"]["mode"] == "full" and len(quotes["INFY.NSE"]["bids"]) == 5
    assert quotes["INFY.NSE"]["token"] == paytm.key("INFY.NSE")


async def test_rest_quotes_match_the_emulators_state_for_equities_and_indices(
    settings: Settings,
) -> None:
    async with paytm_emulator() as paytm:
        paytm.save_tokens(settings.marketpulse_home)
        configured = _configured(settings, paytm, []).model_copy(
            update={"paytm_quote_batch_size": 2}
        )
        names = ["INFY.NSE", "TCS.NSE", "RELIANCE.NSE", "NIFTY50.NSE_INDEX"]
        wanted = [TrackedSymbol(s, "paytm", paytm.key(s), "", "quote") for s in names]
        wanted.append(TrackedSymbol("GHOST.NSE", "paytm", "NSE:999999:EQUITY", "NSE", "quote"))
        assert SPEC.quotes is not None
        ticks = await SPEC.quotes(configured, wanted)
        last = {k: paytm.emulator.last[paytm.key(k)] for k in names}
        requests = [r for r in paytm.emulator.rest_requests if "/price/live" in r]
    by_symbol = {t.symbol: t for t in ticks}
    assert set(by_symbol) == set(names)  # GHOST: found=false, left out
    for name in names:
        tick, state = by_symbol[name], last[name]
        assert (tick.ltp, tick.open, tick.high, tick.close) == (
            state.ltp, state.open, state.high, state.close)  # fmt: skip
    assert by_symbol["INFY.NSE"].volume == last["INFY.NSE"].volume
    assert by_symbol["NIFTY50.NSE_INDEX"].exchange == "NSE_INDEX"
    assert by_symbol["INFY.NSE"].mode == "quote" and by_symbol["INFY.NSE"].ts_last_trade
    # 4 equities in batches of 2, the index in its own (exchange, scrip type) group
    assert len(requests) == 3 and "pref=NSE:13:INDEX" in requests[-1]


async def test_rest_quotes_with_a_rejected_token_raise_the_login_hint(
    settings: Settings,
) -> None:
    async with paytm_emulator() as paytm:
        CredentialStore.in_home(settings.marketpulse_home).save(
            "paytm", {"access_token": "stale"}, None
        )
        configured = _configured(settings, paytm, [])
        assert SPEC.quotes is not None
        with pytest.raises(FeedAuthError, match="marketpulse login paytm"):
            await SPEC.quotes(
                configured, [TrackedSymbol("INFY.NSE", "paytm", paytm.key("INFY.NSE"), "", "q")]
            )


async def test_recorded_raw_frames_replay_to_the_same_ticks(tmp_path: Path) -> None:
    out, raw, again = tmp_path / "t.jsonl", tmp_path / "f.raw", tmp_path / "a.jsonl"
    async with paytm_emulator(rate=600) as paytm:
        paytm.save_tokens(tmp_path)
        env: dict[str, str | None] = {
            "MARKETPULSE_HOME": str(tmp_path), "PAYTM_WS_URL": paytm.ws_url,
            "PAYTM_PUBLIC_ACCESS_TOKEN": None,
        }  # fmt: skip
        tokens = f"{paytm.key('INFY.NSE')},{paytm.key('NIFTY50.NSE_INDEX')},NSE:13:EQUITY"
        recorded = await invoke_cli(["record", "--feed", "paytm", "--tokens", tokens, "--mode",
                                     "quote", "--duration", "1.5", "--out", str(out), "--raw",
                                     str(raw)], env)  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    replay = await invoke_cli(["replay", str(raw), "--feed", "paytm", "--out", str(again)], env)
    assert replay.exit_code == 0, replay.output
    first, second = out.read_text().splitlines(), again.read_text().splitlines()
    assert len(first) > 10 and second[: len(first)] == first
    assert {json.loads(line)["token"] for line in first} == set(tokens.split(","))
