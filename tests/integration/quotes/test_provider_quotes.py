"""Each provider's ``SPEC.quotes`` against its emulator's REST quote API, exact values.

The instrument master is synced from the emulator, the symbol resolved through it (as the quote
service does), a known tick pushed into the emulator, and the quote must carry it back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from marketpulse.config import Settings
from marketpulse.credentials import CredentialStore
from marketpulse.emulators.angelone import (
    TEST_API_KEY,
    TEST_CLIENT_CODE,
    TEST_FEED_TOKEN,
    TEST_JWT,
)
from marketpulse.emulators.dhan import TEST_ACCESS_TOKEN, TEST_CLIENT_ID
from marketpulse.feeds.registry import feed_spec
from marketpulse.model import Tick
from marketpulse.store.instruments import lookup_instruments, sync_instruments
from tests.integration.angelone.support import emulator as angelone_emulator
from tests.integration.dhan.helpers import dhan_emulator
from tests.integration.fyers.helpers import fyers_emulator
from tests.integration.fyers.helpers import save_session as save_fyers
from tests.integration.kite.helpers import kite_emulator
from tests.integration.kite.helpers import save_session as save_kite


@dataclass
class Provider:
    settings: Settings
    push: Callable[[Tick], object]


@contextlib.asynccontextmanager
async def provider(name: str, settings: Settings) -> AsyncIterator[Provider]:
    home = settings.marketpulse_home
    if name == "kite":
        save_kite(home)
        async with kite_emulator() as kite:
            yield Provider(settings.model_copy(update={"kite_api_url": kite.api_url}),
                           lambda t: kite.emulator.push([t]))  # fmt: skip
    elif name == "dhan":
        CredentialStore.in_home(home).save(
            "dhan", {"client_id": TEST_CLIENT_ID, "access_token": TEST_ACCESS_TOKEN}, None
        )
        async with dhan_emulator() as dhan:
            update = {"dhan_api_url": dhan.api_url, "dhan_scrip_master_url": dhan.master_url}
            yield Provider(settings.model_copy(update=update), lambda t: dhan.emulator.push([t]))
    elif name == "fyers":
        save_fyers(home)
        async with fyers_emulator() as fy:
            update = {"fyers_api_url": fy.api_url, "fyers_public_url": fy.api_url}
            yield Provider(settings.model_copy(update=update), lambda t: fy.emulator.push([t]))
    else:
        CredentialStore.in_home(home).save("angelone", {
            "api_key": TEST_API_KEY, "client_code": TEST_CLIENT_CODE, "jwt_token": TEST_JWT,
            "feed_token": TEST_FEED_TOKEN,
        }, None)  # fmt: skip
        async with angelone_emulator() as angel:
            update = {"angelone_api_url": angel.api_url,
                      "angelone_scrip_master_url": angel.master_url}  # fmt: skip
            yield Provider(settings.model_copy(update=update), lambda t: angel.emulator.push([t]))


@pytest.mark.parametrize("name", ["kite", "dhan", "fyers", "angelone"])
async def test_the_providers_rest_quote_carries_the_latest_tick_for_the_canonical_symbol(
    name: str, settings: Settings, pool: asyncpg.Pool
) -> None:
    spec = feed_spec(name)
    assert spec.quotes is not None and spec.instruments is not None
    async with provider(name, settings) as running:
        await sync_instruments(pool, name, await spec.instruments(running.settings, None))
        tracked, unknown = await lookup_instruments(pool, name, ["RELIANCE.NSE", "NOPE.NSE"])
        assert unknown == ["NOPE.NSE"] and len(tracked) == 1
        reliance = tracked[0]
        running.push(Tick(
            source=name, token=reliance.token, exchange=reliance.exchange, mode="full",
            ltp=2950.25, volume=123_456, open=2900.0, high=2960.0, low=2890.5, close=2910.0,
        ))  # fmt: skip
        ticks = await spec.quotes(running.settings, tracked)
    assert len(ticks) == 1
    tick = ticks[0]
    assert (tick.symbol, tick.source, tick.token, tick.exchange) == (
        "RELIANCE.NSE", name, reliance.token, "NSE"
    )  # fmt: skip
    assert (tick.ltp, tick.close) == (2950.25, 2910.0)
    assert tick.change == pytest.approx(40.25)
