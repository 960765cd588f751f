"""Paytm Money live-price REST API: quotes for symbols and indices, in batches.

``GET {PAYTM_API_URL}/data/v1/price/live?mode=QUOTE&pref=NSE:2885:EQUITY,NSE:13:INDEX`` with
the header ``x-jwt-token`` (spec §7). The preference list goes into the query **unencoded** (the
official SDKs do so; a double-encoded one silently returns nothing), so the URL is built by hand.
Requests are paced by the shared :class:`~marketpulse.feeds.http.RateLimiter` and split into
``PAYTM_QUOTE_BATCH_SIZE`` prefs (both limits are unknown, hence settings). Results are matched
on ``security_id`` + index-ness, not on order (the order is unspecified). Times are 1980-epoch
seconds like the socket's.

Errors, as :mod:`marketpulse.feeds.quotes` asks: HTTP 401/403 → :class:`FeedAuthError` with the
login hint; 429 → :class:`QuoteRateLimitedError`; network errors and 5xx are retried with backoff,
then :class:`QuoteProviderDownError`; anything else is a :class:`PaytmApiError`.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final

import httpx

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAuthError, FeedError
from marketpulse.feeds.http import RateLimiter
from marketpulse.feeds.paytm import wire
from marketpulse.feeds.paytm.credentials import LOGIN_HINT, load_rest_token
from marketpulse.feeds.quotes import QuoteProviderDownError, QuoteRateLimitedError
from marketpulse.model import DepthLevel, Tick
from marketpulse.subscriptions import TrackedSymbol

LIVE_PATH: Final = "/data/v1/price/live"
MODES: Final = ("LTP", "QUOTE", "FULL")


class PaytmApiError(FeedError):
    """Paytm Money refused a request for a reason retrying cannot fix."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, RateLimiter]] = (
    weakref.WeakKeyDictionary()
)


def shared_limiter(rate: float) -> RateLimiter:
    """One limiter per event loop and rate, so every fetch in a process shares the pacing."""
    per_loop = _limiters.setdefault(asyncio.get_running_loop(), {})
    limiter = per_loop.get(rate)
    if limiter is None:
        limiter = per_loop[rate] = RateLimiter(rate)
    return limiter


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _int(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


def _ms(value: Any) -> int | None:
    seconds = _int(value)
    return (seconds + wire.EPOCH_OFFSET) * 1000 if seconds else None


def _levels(rows: Any) -> list[DepthLevel] | None:
    if not isinstance(rows, list):
        return None
    out = []
    for row in rows:
        if isinstance(row, Mapping):
            price, qty = _num(row.get("price")), _int(row.get("quantity"))
            if price is not None and qty is not None:
                out.append(DepthLevel(price, qty, _int(row.get("orders")) or 0))
    return out or None


def parse_quote(item: Mapping[str, Any], key: str, exchange: str) -> Tick | None:
    """One ``data`` entry as a tick for ``key``; ``None`` when Paytm did not find it."""
    ltp = _num(item.get("last_price"))
    if item.get("found") is False or ltp is None:
        return None
    ohlc = item.get("ohlc") if isinstance(item.get("ohlc"), Mapping) else {}
    assert isinstance(ohlc, Mapping)
    depth = item.get("depth") if isinstance(item.get("depth"), Mapping) else {}
    assert isinstance(depth, Mapping)
    index = key.endswith(":INDEX")
    volume = _int(item.get("volume_traded"))
    return Tick(
        source=wire.SOURCE, token=key, exchange=exchange,
        mode="quote" if ohlc or volume is not None else "ltp", ltp=ltp,
        ltq=_int(item.get("last_traded_quantity")), atp=_num(item.get("average_traded_price")),
        volume=volume, total_buy_qty=_int(item.get("total_buy_quantity")),
        total_sell_qty=_int(item.get("total_sell_quantity")), open=_num(ohlc.get("open")),
        high=_num(ohlc.get("high")), low=_num(ohlc.get("low")), close=_num(ohlc.get("close")),
        change=_num(item.get("change_absolute")), change_pct=_num(item.get("change_percent")),
        oi=_int(item.get("oi")) if key.endswith((":FUTURE", ":OPTION")) else None,
        high_52w=_num(item.get("52_week_high")), low_52w=_num(item.get("52_week_low")),
        ts_exchange=_ms(item.get("last_update_time")) if index else None,
        ts_last_trade=None if index else _ms(item.get("last_trade_time")),
        bids=_levels(depth.get("buy")), asks=_levels(depth.get("sell")),
    )  # fmt: skip


class PaytmRestClient:
    """An HTTP session against ``PAYTM_API_URL`` with the day's REST token."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        limiter: RateLimiter | None = None,
        timeout: float = 15.0,
        attempts: int = 3,
        base_delay: float = 0.5,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.limiter = limiter
        self.attempts = attempts
        self.base_delay = base_delay
        self._rng = random.Random()
        self._http = httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> PaytmRestClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def live(self, mode: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The ``data`` array for ``keys`` (``EXCHANGE:ID:TYPE``) in ``mode`` (one request)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        url = f"{self.api_url}{LIVE_PATH}?mode={mode}&pref={','.join(keys)}"
        headers = {"x-jwt-token": self._token, "Content-Type": "application/json"}
        last = ""
        for attempt in range(self.attempts):
            if self.limiter is not None:
                await self.limiter.acquire()
            try:
                response = await self._http.get(url, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status in (401, 403):
                    raise FeedAuthError(
                        f"paytm: the live-price API refused the token (HTTP {status}); it has "
                        f"expired (tokens die at 23:59:59 IST) or is invalid: run `{LOGIN_HINT}`"
                    )
                if status == 429:
                    retry = _num(_float_header(response.headers.get("retry-after")))
                    raise QuoteRateLimitedError(
                        "paytm: the live-price API is rate limited (HTTP 429); lower "
                        "PAYTM_QUOTE_RATE_PER_SECOND",
                        retry,
                    )
                if status < 500:
                    return self._data(response)
                last = f"HTTP {status}"
            await asyncio.sleep(self._rng.uniform(0, self.base_delay * 2**attempt))
        raise QuoteProviderDownError(
            f"paytm: the live-price API failed after {self.attempts} attempts ({last})"
        )

    @staticmethod
    def _data(response: httpx.Response) -> list[dict[str, Any]]:
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if status != 200 or not isinstance(body, dict):
            raise PaytmApiError(
                f"paytm: the live-price API answered HTTP {status}: {response.text[:200]!r}", status
            )
        data = body.get("data")
        return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _float_header(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


async def fetch_quotes(settings: Settings, instruments: Sequence[TrackedSymbol]) -> list[Tick]:
    """The quote fetcher of ``SPEC.quotes``: QUOTE-mode live prices for ``instruments``.

    A reply names only ``security_id`` (no exchange or scrip type), so each request holds one
    (exchange, scrip type) group, where ids are unique; groups are split into batches.
    """
    groups: dict[tuple[str, str], dict[int, TrackedSymbol]] = {}
    for item in instruments:
        try:
            exchange, ident, scrip_type = wire.parse_key(item.token)
        except ValueError:
            continue  # not a Paytm key: the service reports it as missing
        groups.setdefault((exchange, scrip_type), {})[ident] = item
    if not groups:
        return []
    token = load_rest_token(settings.marketpulse_home)
    batch = settings.paytm_quote_batch_size
    out: list[Tick] = []
    limiter = shared_limiter(settings.paytm_quote_rate_per_second)
    async with PaytmRestClient(settings.paytm_api_url, token, limiter=limiter) as client:
        for (exchange, scrip_type), by_id in groups.items():
            ids = list(by_id)
            for start in range(0, len(ids), batch):
                chunk = [wire.make_key(exchange, i, scrip_type) for i in ids[start : start + batch]]
                for row in await client.live("QUOTE", chunk):
                    row_id = _int(row.get("security_id"))
                    found = None if row_id is None else by_id.get(row_id)
                    if row_id is None or found is None:
                        continue
                    exch = found.exchange or wire.canonical_exchange(exchange, scrip_type)
                    tick = parse_quote(row, wire.make_key(exchange, row_id, scrip_type), exch)
                    if tick is not None:
                        tick.symbol = found.symbol or None
                        out.append(tick)
    return out
