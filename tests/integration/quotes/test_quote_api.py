"""``/api/quotes`` and ``/api/indices`` through the running service with the Kite feed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx

from marketpulse.config import Settings
from marketpulse.feeds.kite.feed import SPEC
from marketpulse.store.instruments import sync_instruments
from tests.integration.kite.helpers import kite_emulator, save_session
from tests.support.service import running_service


async def poll(http: httpx.AsyncClient, url: str, until: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = (await http.get(url)).json()
        if until(body) or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def test_a_symbol_no_feed_streams_is_answered_over_rest_then_streamed_live(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    save_session(settings.marketpulse_home)
    async with kite_emulator(rate=200) as kite:
        configured = settings.model_copy(update={
            "feeds": ["kite"], "subscribe": ["INFY.NSE"], "kite_ws_url": kite.ws_url,
            "kite_api_url": kite.api_url,
        })  # fmt: skip
        assert SPEC.instruments is not None
        await sync_instruments(pool, "kite", await SPEC.instruments(configured, None))
        async with running_service(configured) as endpoints, httpx.AsyncClient() as http:
            base = endpoints.http
            infy = f"{base}/api/quotes?symbols=INFY.NSE"
            await poll(http, infy, lambda b: b["quotes"]["INFY.NSE"]["origin"] == "live")
            first = (await http.get(f"{base}/api/quotes?symbols=TCS.NSE")).json()
            tcs_token = str(kite.token("NSE:TCS"))
            streamed = await poll(http, f"{base}/api/quotes?symbols=TCS.NSE",
                                  lambda b: b["quotes"]["TCS.NSE"]["origin"] == "live")  # fmt: skip
            indices = (await http.get(f"{base}/api/indices?symbols=NIFTY50.NSE,^BSESN")).json()
            not_index = await http.get(f"{base}/api/indices?symbols=INFY.NSE")
    tcs = first["quotes"]["TCS.NSE"]
    assert (tcs["origin"], tcs["source"], tcs["token"], tcs["stale"]) == (
        "rest", "kite", tcs_token, False
    )  # fmt: skip
    assert streamed["quotes"]["TCS.NSE"]["origin"] == "live", streamed
    assert any(tcs_token in str(c.modes) for c in kite.emulator.history), "TCS was subscribed"
    assert set(indices["quotes"]) == {"NIFTY50.NSE_INDEX", "SENSEX.BSE_INDEX"}
    assert indices["quotes"]["SENSEX.BSE_INDEX"]["exchange"] == "BSE_INDEX"
    assert not_index.status_code == 422 and "is not an index" in not_index.text


async def test_when_the_provider_refuses_every_symbol_the_api_answers_503_with_the_reason(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with kite_emulator() as kite:
        configured = settings.model_copy(update={
            "feeds": ["sim"], "subscribe": ["RELIANCE.NSE"], "quote_providers": ["kite"],
            "kite_api_url": kite.api_url,
        })  # fmt: skip
        assert SPEC.instruments is not None
        await sync_instruments(pool, "kite", await SPEC.instruments(configured, None))
        async with running_service(configured) as endpoints, httpx.AsyncClient() as http:
            await poll(http, f"{endpoints.http}/api/quotes?symbols=RELIANCE.NSE",
                       lambda b: "RELIANCE.NSE" in b.get("quotes", {}))  # fmt: skip
            refused = await http.get(f"{endpoints.http}/api/quotes?symbols=TCS.NSE")
            partial = await http.get(f"{endpoints.http}/api/quotes?symbols=RELIANCE.NSE,TCS.NSE")
    assert refused.status_code == 503
    assert "marketpulse login kite" in refused.text and refused.json()["status_code"] == 503
    body = partial.json()
    assert partial.status_code == 200 and body["missing"] == ["TCS.NSE"]
    assert body["errors"]["TCS.NSE"]["kind"] == "auth"
    assert body["quotes"]["RELIANCE.NSE"]["origin"] == "live"
