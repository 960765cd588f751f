"""The emulator's SmartAPI REST endpoints: login, tokens, quotes, candles, instrument master.

Answers use SmartAPI's envelope ``{"status", "message", "errorcode", "data"}``; a bad or expired
jwt is HTTP 401 with ``{"success": false, "message", "errorCode", "data"}`` (the shape token
failures have on the real API). Rate limits are enforced per endpoint family with a one-second
window; a refused request gets HTTP 403 ``Access denied because of exceeding access rate`` (how
the real gateway words it, as far as users report). Tests can force refusals with
:meth:`RestFaults.rate_limit_next` and :meth:`RestFaults.fail_next`.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from marketpulse.emulators.angelone import candles
from marketpulse.emulators.angelone.accounts import Accounts, Refusal, Session
from marketpulse.emulators.angelone.stream import StreamHub
from marketpulse.emulators.options import EmulatorOptions
from marketpulse.emulators.quotes import depth_of
from marketpulse.feeds.angelone import market_data, rest, wire
from marketpulse.feeds.angelone.market_data import Interval
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.feeds.simulator.universe import Universe
from marketpulse.model import Tick

SCRIP_MASTER_PATH: Final = "/OpenAPI_File/files/OpenAPIScripMaster.json"
RATE_LIMITED_TEXT: Final = "Access denied because of exceeding access rate"


@dataclass(frozen=True, slots=True)
class RestLimits:
    quote_per_second: int = 10
    history_per_second: int = 3
    auth_per_second: int = 10
    quote_tokens: int = market_data.MAX_QUOTE_TOKENS


@dataclass(slots=True)
class RestFaults:
    """Scripted REST failures for retry tests: the next N calls are refused."""

    rate_limited: int = 0
    failures: list[int] = field(default_factory=list)  # HTTP statuses to answer, in order

    def rate_limit_next(self, count: int) -> None:
        self.rate_limited += count

    def fail_next(self, count: int, status: int = 503) -> None:
        self.failures += [status] * count


def envelope(data: Any, message: str = "SUCCESS") -> JSONResponse:
    return JSONResponse({"status": True, "message": message, "errorcode": "", "data": data})


def refusal(refused: Refusal, status: int = 200) -> JSONResponse:
    return JSONResponse(
        {"status": False, "message": refused.message, "errorcode": refused.errorcode,
         "data": None},
        status_code=status,
    )  # fmt: skip


def token_refusal(refused: Refusal) -> JSONResponse:
    return JSONResponse(
        {"success": False, "message": refused.message, "errorCode": refused.errorcode,
         "data": ""},
        status_code=401,
    )  # fmt: skip


def _session_of(result: Session) -> dict[str, str]:
    return {"jwtToken": result.jwt, "refreshToken": result.refresh_token,
            "feedToken": result.feed_token}  # fmt: skip


class RestApi:
    """State behind the routes: accounts, the hub (for last prices), limits and faults."""

    def __init__(
        self,
        options: EmulatorOptions,
        accounts: Accounts,
        hub: StreamHub,
        universe: Universe,
        master_json: bytes,
        limits: RestLimits,
    ) -> None:
        self.options = options
        self.accounts = accounts
        self.hub = hub
        self.universe = universe
        self.master_json = master_json
        rows = msgspec.json.decode(master_json)
        self._broker_symbols: dict[str, str] = {row["token"]: row["symbol"] for row in rows}
        self.limits = limits
        self.faults = RestFaults()
        self.calls: collections.Counter[str] = collections.Counter()
        self.refused: collections.Counter[str] = collections.Counter()
        self._windows: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )

    # ------------------------------------------------------------------ gatekeeping

    def _gate(self, family: str, path: str) -> Response | None:
        """Scripted faults first, then the per-second limit of the family."""
        self.calls[path] += 1
        if self.faults.failures:
            self.refused[path] += 1
            status = self.faults.failures.pop(0)
            return PlainTextResponse(f"emulated failure (HTTP {status})", status_code=status)
        limit = getattr(self.limits, f"{family}_per_second")
        window = self._windows[family]
        now = time.monotonic()
        while window and now - window[0] >= 1.0:
            window.popleft()
        if self.faults.rate_limited > 0 or len(window) >= limit:
            self.faults.rate_limited = max(0, self.faults.rate_limited - 1)
            self.refused[path] += 1
            return PlainTextResponse(RATE_LIMITED_TEXT, status_code=403)
        window.append(now)
        return None

    def _private_key(self, request: Request) -> Response | None:
        if request.headers.get("x-privatekey") != self.accounts.api_key:
            return token_refusal(Refusal("AG8004", "Invalid API Key"))
        return None

    def _secure(self, request: Request, family: str) -> Session | Response:
        blocked = self._gate(family, request.url.path) or self._private_key(request)
        if blocked is not None:
            return blocked
        session = self.accounts.by_jwt(request.headers.get("authorization"))
        return token_refusal(session) if isinstance(session, Refusal) else session

    # ------------------------------------------------------------------ auth

    async def login(self, request: Request) -> Response:
        blocked = self._gate("auth", request.url.path) or self._private_key(request)
        if blocked is not None:
            return blocked
        body = await _json(request)
        fields = (str(body.get(k, "")) for k in ("clientcode", "password", "totp"))
        result = self.accounts.login(*fields)
        return refusal(result) if isinstance(result, Refusal) else envelope(_session_of(result))

    async def generate_tokens(self, request: Request) -> Response:
        blocked = self._gate("auth", request.url.path) or self._private_key(request)
        if blocked is not None:
            return blocked
        body = await _json(request)
        result = self.accounts.refresh(str(body.get("refreshToken", "")))
        return refusal(result) if isinstance(result, Refusal) else envelope(_session_of(result))

    async def logout(self, request: Request) -> Response:
        session = self._secure(request, "auth")
        if isinstance(session, Response):
            return session
        self.accounts.logout(session)
        return envelope(None, "LOGOUT SUCCESS")

    async def profile(self, request: Request) -> Response:
        session = self._secure(request, "auth")
        if isinstance(session, Response):
            return session
        return envelope({"clientcode": session.client_code, "name": "marketpulse test account",
                         "exchanges": ["NSE", "BSE", "NFO", "BFO"], "products": []})  # fmt: skip

    # ------------------------------------------------------------------ market data

    async def quote(self, request: Request) -> Response:
        session = self._secure(request, "quote")
        if isinstance(session, Response):
            return session
        body = await _json(request)
        mode = str(body.get("mode", "")).upper()
        groups = body.get("exchangeTokens")
        if mode not in market_data.QUOTE_MODES.values() or not isinstance(groups, dict):
            return refusal(Refusal("AB4018", "Invalid Request. Need mode LTP/OHLC/FULL and "
                                             "exchangeTokens"))  # fmt: skip
        wanted = [(str(ex), str(tok)) for ex, tokens in groups.items() for tok in tokens or ()]
        if len(wanted) > self.limits.quote_tokens:
            limit = self.limits.quote_tokens
            return refusal(Refusal("AB4017", f"Invalid Request. At most {limit} tokens"))
        fetched, unfetched = [], []
        for exchange, token in wanted:
            tick = self._last_tick(exchange, token)
            if tick is None:
                unfetched.append({"exchange": exchange, "symbolToken": token,
                                  "message": "Invalid Token", "errorCode": "AB1018"})  # fmt: skip
            else:
                symbol = self._broker_symbols.get(token, "")
                fetched.append(quote_item(tick, exchange, mode, symbol))
        return envelope({"fetched": fetched, "unfetched": unfetched})

    def _last_tick(self, exchange: str, token: str) -> Tick | None:
        code = wire.EXCHANGE_TYPES.get(exchange)
        spec = self.universe.get(token)
        if code is None or spec is None or wire.EXCHANGE_TYPES[spec.instrument.exchange] != code:
            return None
        last = self.hub.last.get((code, token))
        if last is not None:
            return last
        # Not traded here yet: the previous close, and no day's activity.
        close = spec.close
        return Tick("sim", token, spec.instrument.exchange.value, "full", close, open=close,
                    high=close, low=close, close=close, volume=0)  # fmt: skip

    async def candle_data(self, request: Request) -> Response:
        session = self._secure(request, "history")
        if isinstance(session, Response):
            return session
        body = await _json(request)
        try:
            interval = Interval[str(body.get("interval", ""))]
            start = market_data.parse_api_time(str(body.get("fromdate", "")))
            end = market_data.parse_api_time(str(body.get("todate", "")))
        except (KeyError, ValueError) as exc:
            return refusal(Refusal("AB13000", f"Invalid Request: {exc}"))
        if end < start or (end - start).total_seconds() > interval.max_days * 86400:
            return refusal(Refusal("AB13000", f"Invalid date range: at most {interval.max_days} "
                                              f"days for {interval.api_name}"))  # fmt: skip
        token = str(body.get("symboltoken", ""))
        spec = self.universe.get(token)
        if spec is None:
            return refusal(Refusal("AB1018", "Failed to get symbol details"))
        now = datetime.fromtimestamp(self.options.clock(), IST)
        tick = spec.instrument.tick_size or 0.05
        rows = candles.candles(
            self.options.seed, token, spec.close, tick, interval, start, end, now
        )
        return envelope(rows)

    async def scrip_master(self, request: Request) -> Response:
        self.calls[request.url.path] += 1
        return Response(self.master_json, media_type="application/json")


def quote_item(tick: Tick, exchange: str, mode: str, broker_symbol: str) -> dict[str, Any]:
    """One ``fetched`` entry as the quote API spells it (rupees, IST feed times)."""
    item: dict[str, Any] = {"exchange": exchange, "tradingSymbol": broker_symbol,
                            "symbolToken": tick.token, "ltp": tick.ltp}  # fmt: skip
    if mode == "LTP":
        return item
    item.update(open=tick.open or 0.0, high=tick.high or 0.0, low=tick.low or 0.0,
                close=tick.close or 0.0)  # fmt: skip
    if mode == "OHLC":
        return item
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    item.update({
        "lastTradeQty": tick.ltq or 0,
        "exchFeedTime": market_data.format_feed_time(tick.ts_exchange or now_ms),
        "exchTradeTime": market_data.format_feed_time(tick.ts_last_trade or tick.ts_exchange
                                                      or now_ms),
        "netChange": round(tick.change or 0.0, 2),
        "percentChange": round(tick.change_pct or 0.0, 2),
        "avgPrice": tick.atp or 0.0,
        "tradeVolume": tick.volume or 0,
        "opnInterest": tick.oi or 0,
        "lowerCircuit": tick.lower_circuit or 0.0,
        "upperCircuit": tick.upper_circuit or 0.0,
        "totBuyQuan": tick.total_buy_qty or 0,
        "totSellQuan": tick.total_sell_qty or 0,
        "52WeekLow": tick.low_52w or 0.0,
        "52WeekHigh": tick.high_52w or 0.0,
        "depth": depth_of(tick),
    })  # fmt: skip
    return item


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def router(api: RestApi) -> APIRouter:
    routes = APIRouter()
    add = routes.add_api_route
    add(rest.LOGIN_PATH, api.login, methods=["POST"])
    add(rest.REFRESH_PATH, api.generate_tokens, methods=["POST"])
    add(rest.LOGOUT_PATH, api.logout, methods=["POST"])
    add(rest.PROFILE_PATH, api.profile, methods=["GET"])
    add(rest.QUOTE_PATH, api.quote, methods=["POST"])
    add(rest.QUOTE_PATH.rstrip("/"), api.quote, methods=["POST"])  # the SDK's spelling
    add(rest.CANDLE_PATH, api.candle_data, methods=["POST"])
    add(SCRIP_MASTER_PATH, api.scrip_master, methods=["GET"])
    return routes
