"""DhanHQ v2 REST: market quotes (LTP/OHLC/quote), historical charts and the scrip master.

Every data call is ``POST {DHAN_API_URL}/v2/...`` with the headers ``access-token`` and
``client-id``; errors come back as ``{"errorType", "errorCode", "errorMessage"}``. HTTP 401/403
or the ``DH-901`` code mean the token is wrong or expired (:class:`FeedAuthError`, with the login
hint); HTTP 429 / ``DH-904`` and 5xx are retried with backoff; anything else is a
:class:`DhanApiError` naming the code and Dhan's message.

Charts: daily candles (``/v2/charts/historical``, ``toDate`` exclusive) and intraday 1/5/15/25/60
minute candles (``/v2/charts/intraday``, at most 90 days per request, so longer ranges are split).
Timestamps are true epoch seconds (the official SDK converts them with ``fromtimestamp``), unlike
the live feed's IST-as-UTC LTT.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

import httpx

from marketpulse.config import Settings
from marketpulse.feeds.base import FeedAuthError, FeedError
from marketpulse.feeds.dhan.credentials import LOGIN_HINT, DhanCredentials, load_session
from marketpulse.feeds.dhan.wire import parse_key
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.model import Candle, DepthLevel, Mode, Tick, price_change

QUOTE_PATHS: Final = {"ltp": "/v2/marketfeed/ltp", "ohlc": "/v2/marketfeed/ohlc",
                      "quote": "/v2/marketfeed/quote"}  # fmt: skip
DAILY_PATH: Final = "/v2/charts/historical"
INTRADAY_PATH: Final = "/v2/charts/intraday"
INTRADAY_MAX_DAYS: Final = 90
MAX_QUOTE_INSTRUMENTS: Final = 1000
INTRADAY_INTERVALS: Final = {"1m": "1", "5m": "5", "15m": "15", "1h": "60"}
INDEX_UNDERLYINGS: Final = frozenset({"NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY",
                                      "NIFTYNXT50", "SENSEX", "BANKEX", "SENSEX50"})  # fmt: skip


class DhanApiError(FeedError):
    """Dhan refused a request for a reason retrying cannot fix; the message has its code."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def instrument_type(token: str, symbol: str) -> str:
    """Dhan's ``instrument`` field for a chart request, from the key and canonical symbol."""
    segment, _ = parse_key(token)
    name = symbol.partition(".")[0].upper()
    if segment == "IDX_I":
        return "INDEX"
    if segment in ("NSE_EQ", "BSE_EQ"):
        return "EQUITY"
    underlying = name.rstrip("0123456789.CEPFUT")
    for index in INDEX_UNDERLYINGS:
        if name.startswith(index) and name[len(index) : len(index) + 2].isdigit():
            underlying = index
    fut = name.endswith("FUT")
    if segment == "MCX_COMM":
        return "FUTCOM" if fut else "OPTFUT"
    if segment in ("NSE_CURRENCY", "BSE_CURRENCY"):
        return "FUTCUR" if fut else "OPTCUR"
    on_index = underlying in INDEX_UNDERLYINGS
    return ("FUTIDX" if on_index else "FUTSTK") if fut else ("OPTIDX" if on_index else "OPTSTK")


def intraday_windows(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` in windows of at most :data:`INTRADAY_MAX_DAYS` days."""
    step = timedelta(days=INTRADAY_MAX_DAYS)
    cursor = start
    while cursor < end:
        stop = min(end, cursor + step)
        yield cursor, stop
        cursor = stop


def parse_candles(body: Any, symbol: str, interval: str) -> list[Candle]:
    """Dhan's column arrays (``open``, ``high``, ``low``, ``close``, ``volume``, ``timestamp``
    and optionally ``open_interest``) as candles, oldest first."""
    if not isinstance(body, Mapping):
        raise DhanApiError(f"dhan: unexpected chart response {str(body)[:200]!r}")
    stamps = body.get("timestamp") or []
    cols = [body.get(k) or [] for k in ("open", "high", "low", "close", "volume")]
    if any(len(c) != len(stamps) for c in cols):
        raise DhanApiError("dhan: chart response columns have different lengths")
    ois = body.get("open_interest") or []
    candles = []
    for i, ts in enumerate(stamps):
        oi = int(ois[i]) if i < len(ois) and ois[i] else None
        candles.append(
            Candle(symbol, interval, datetime.fromtimestamp(float(ts), UTC), float(cols[0][i]),
                   float(cols[1][i]), float(cols[2][i]), float(cols[3][i]), int(cols[4][i]), oi,
                   status="reconciled")
        )  # fmt: skip
    candles.sort(key=lambda c: c.start)
    return candles


class DhanRestClient:
    """An HTTP session against ``DHAN_API_URL`` with the day's credentials."""

    def __init__(
        self,
        api_url: str,
        credentials: DhanCredentials | None,
        *,
        timeout: float = 30.0,
        attempts: int = 4,
        base_delay: float = 0.5,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.credentials = credentials
        self.attempts = attempts
        self.base_delay = base_delay
        self._rng = random.Random()
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=True)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        require_session: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> DhanRestClient:
        creds = load_session(settings.marketpulse_home, env) if require_session else None
        return cls(settings.dhan_api_url, creds)

    async def __aenter__(self) -> DhanRestClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST with retries on 429/5xx/network errors; the JSON answer."""
        creds = self.credentials
        if creds is None:
            raise FeedAuthError(f"dhan: no credentials; run `{LOGIN_HINT}`")
        headers = {"access-token": creds.access_token, "client-id": creds.client_id,
                   "Accept": "application/json"}  # fmt: skip
        last = ""
        for attempt in range(self.attempts):
            try:
                response = await self._http.post(self.api_url + path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                retry, payload = self._read(response, path, creds)
                if not retry:
                    return payload
                last = f"HTTP {response.status_code}"
            await asyncio.sleep(self._rng.uniform(0, self.base_delay * 2**attempt))
        raise DhanApiError(f"dhan: {path} failed after {self.attempts} attempts ({last})")

    def _read(
        self, response: httpx.Response, path: str, creds: DhanCredentials
    ) -> tuple[bool, Any]:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        error = payload if isinstance(payload, dict) and "errorCode" in payload else None
        code = str(error.get("errorCode", "")) if error else ""
        message = str(error.get("errorMessage", "")) if error else response.text[:200]
        if status in (401, 403) or code in ("DH-901", "DH-902"):
            raise FeedAuthError(
                f"dhan: {path} refused client {creds.client_id} ({code or f'HTTP {status}'}: "
                f"{message}); the access token has expired or is invalid: run `{LOGIN_HINT}`"
            )
        if status == 429 or code == "DH-904" or status >= 500:
            return True, None
        if status >= 400 or error is not None:
            raise DhanApiError(f"dhan: {path} failed ({code or f'HTTP {status}'}: {message})",
                               status, code)  # fmt: skip
        return False, payload

    async def quotes(self, kind: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``ltp``/``ohlc``/``quote`` for instrument keys → ``{key: Dhan's quote object}``."""
        path = QUOTE_PATHS[kind]
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), MAX_QUOTE_INSTRUMENTS):
            body: dict[str, list[int]] = {}
            for key in keys[start : start + MAX_QUOTE_INSTRUMENTS]:
                segment, ident = parse_key(key)
                body.setdefault(segment, []).append(ident)
            payload = await self.post(path, body)
            data = payload.get("data", {}) if isinstance(payload, dict) else {}
            for segment, rows in data.items():
                if isinstance(rows, dict):
                    for ident, quote in rows.items():
                        out[f"{segment}|{ident}"] = quote
        return out

    async def daily(self, key: str, instrument: str, start: datetime, end: datetime,
                    oi: bool = False) -> Any:  # fmt: skip
        segment, ident = parse_key(key)
        body = {"securityId": str(ident), "exchangeSegment": segment, "instrument": instrument,
                "expiryCode": 0, "oi": oi, "fromDate": start.astimezone(IST).date().isoformat(),
                "toDate": end.astimezone(IST).date().isoformat()}  # fmt: skip
        return await self.post(DAILY_PATH, body)

    async def intraday(self, key: str, instrument: str, interval: str, start: datetime,
                       end: datetime, oi: bool = False) -> Any:  # fmt: skip
        segment, ident = parse_key(key)
        fmt = "%Y-%m-%d %H:%M:%S"
        body = {"securityId": str(ident), "exchangeSegment": segment, "instrument": instrument,
                "interval": interval, "oi": oi,
                "fromDate": start.astimezone(IST).strftime(fmt),
                "toDate": end.astimezone(IST).strftime(fmt)}  # fmt: skip
        return await self.post(INTRADAY_PATH, body)


def quote_tick(quote: Mapping[str, Any], key: str, symbol: str, exchange: str,
               ts_recv: int) -> Tick:  # fmt: skip
    """One ``/v2/marketfeed/quote`` entry as a ``quote``-mode tick (Dhan's ``ohlc.close`` is
    the previous session's close, as on the live feed)."""
    ohlc = quote.get("ohlc") or {}
    depth = quote.get("depth") or {}
    ltp = float(quote.get("last_price") or 0.0)
    close = float(ohlc.get("close") or 0.0) or None
    change, change_pct = price_change(ltp, close)

    def levels(side: str) -> list[DepthLevel] | None:
        rows = [DepthLevel(float(r.get("price") or 0.0), int(r.get("quantity") or 0),
                           int(r.get("orders") or 0))
                for r in depth.get(side) or () if r.get("quantity")]  # fmt: skip
        return rows or None

    return Tick(
        source="dhan", token=key, exchange=exchange, mode=Mode.QUOTE.value, ltp=ltp,
        symbol=symbol, ltq=quote.get("last_quantity"), atp=quote.get("average_price"),
        volume=quote.get("volume"), total_buy_qty=quote.get("buy_quantity"),
        total_sell_qty=quote.get("sell_quantity"), open=float(ohlc.get("open") or 0.0) or None,
        high=float(ohlc.get("high") or 0.0) or None, low=float(ohlc.get("low") or 0.0) or None,
        close=close, change=change, change_pct=change_pct, oi=quote.get("oi") or None,
        ts_recv=ts_recv, bids=levels("buy"), asks=levels("sell"),
    )  # fmt: skip
