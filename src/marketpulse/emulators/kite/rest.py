"""The emulated Kite Connect REST API: session, quotes, historical candles, instrument dump.

Same routes, parameters, envelopes (``{"status": "success", "data": ...}`` or ``{"status":
"error", "message", "error_type"}``) and limits as Kite, so the official client and ours work
against it unchanged. Quotes come from the emulator's live market; candles from
:mod:`marketpulse.emulators.candles`. ``emulator.rest_faults`` makes the next data
requests fail with given statuses, for retry tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from starlette.responses import JSONResponse, PlainTextResponse

from marketpulse.emulators.candles import INTERVAL_MINUTES, candles, format_candle
from marketpulse.emulators.kite import core
from marketpulse.emulators.kite.core import KiteEmulator
from marketpulse.emulators.kite.listing import Listing
from marketpulse.emulators.quotes import depth_rows
from marketpulse.feeds.kite.auth import checksum
from marketpulse.feeds.kite.rest import HISTORICAL_INTERVALS, QUOTE_LIMITS
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.model import DepthLevel, Tick

router = APIRouter()

_WIRE_TIME: Final = "%Y-%m-%d %H:%M:%S"
_FAULT_TYPES: Final = {429: "NetworkException", 403: "TokenException", 400: "InputException"}


def _error(status: int, error_type: str, message: str) -> JSONResponse:
    body = {"status": "error", "message": message, "data": None, "error_type": error_type}
    return JSONResponse(body, status_code=status)


def _success(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _emulator(request: Request) -> KiteEmulator:
    emulator: KiteEmulator = request.app.state.emulator
    emulator.rest_requests.append(f"{request.method} {request.url.path}?{request.url.query}")
    return emulator


def _guard(request: Request, emulator: KiteEmulator, *, auth: bool = True) -> JSONResponse | None:
    """An injected fault, or a refused ``Authorization: token api_key:access_token``."""
    if emulator.rest_faults:
        status = emulator.rest_faults.popleft()
        return _error(status, _FAULT_TYPES.get(status, "GeneralException"), "injected fault")
    if not auth:
        return None
    scheme, _, pair = request.headers.get("authorization", "").partition(" ")
    api_key, _, access_token = pair.partition(":")
    problem = (
        emulator.access_problem(api_key, access_token)
        if scheme.lower() == "token"
        else "Missing or invalid Authorization header (expected `token api_key:access_token`)."
    )
    return None if problem is None else _error(403, "TokenException", problem)


def _ist_text(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, IST).strftime(_WIRE_TIME)


# --------------------------------------------------------------------------- session


@router.post("/session/token")
async def session_token(request: Request) -> Response:
    emulator = _emulator(request)
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    missing = [k for k in ("api_key", "request_token", "checksum") if not form.get(k)]
    if missing:
        return _error(400, "InputException", f"Missing {', '.join(missing)}.")
    if form["api_key"] != core.TEST_API_KEY:
        return _error(403, "TokenException", "Invalid `api_key`.")
    request_token = form["request_token"]
    if form["checksum"] != checksum(core.TEST_API_KEY, request_token, core.TEST_API_SECRET):
        return _error(403, "TokenException", "Invalid `checksum`.")
    if request_token in emulator.used_request_tokens:
        return _error(403, "TokenException", "Token is invalid or has expired.")
    emulator.used_request_tokens.add(request_token)
    now = datetime.fromtimestamp(emulator.options.clock(), IST)
    return _success(
        {
            "user_type": "individual", "email": "test@example.com", "user_name": "Test User",
            "user_shortname": "Test", "broker": "ZERODHA",
            "exchanges": ["NSE", "NFO", "BSE", "BFO", "CDS", "MCX"],
            "products": ["CNC", "NRML", "MIS"], "order_types": ["MARKET", "LIMIT"],
            "avatar_url": None, "user_id": core.TEST_USER_ID, "api_key": core.TEST_API_KEY,
            "access_token": core.TEST_ACCESS_TOKEN, "public_token": core.TEST_PUBLIC_TOKEN,
            "refresh_token": "", "enctoken": "", "login_time": now.strftime(_WIRE_TIME),
            "meta": {"demat_consent": "physical"},
        }
    )  # fmt: skip


# --------------------------------------------------------------------------- quotes


def _full_quote(item: Listing, tick: Tick) -> dict[str, Any]:
    close = tick.close or item.spec.close
    tick_size = item.spec.instrument.tick_size or 0.05
    band = round(round(close * 0.1 / tick_size) * tick_size, 2)

    def levels(side: list[DepthLevel] | None) -> list[dict[str, Any]]:
        return (depth_rows(side) + [{"price": 0, "quantity": 0, "orders": 0}] * 5)[:5]

    return {
        "instrument_token": item.token,
        "timestamp": _ist_text(tick.ts_exchange),
        "last_trade_time": _ist_text(tick.ts_last_trade),
        "last_price": tick.ltp,
        "last_quantity": tick.ltq or 0,
        "buy_quantity": tick.total_buy_qty or 0,
        "sell_quantity": tick.total_sell_qty or 0,
        "volume": tick.volume or 0,
        "average_price": tick.atp or 0,
        "oi": tick.oi or 0,
        "oi_day_high": tick.oi_day_high or 0,
        "oi_day_low": tick.oi_day_low or 0,
        "net_change": round(tick.ltp - close, 2) if close else 0,
        "lower_circuit_limit": round(close - band, 2) if not item.is_index else 0,
        "upper_circuit_limit": round(close + band, 2) if not item.is_index else 0,
        "ohlc": {"open": tick.open, "high": tick.high, "low": tick.low, "close": close},
        "depth": {"buy": levels(tick.bids), "sell": levels(tick.asks)},
    }


def _quote(request: Request, path: str) -> Response:
    emulator = _emulator(request)
    refused = _guard(request, emulator)
    if refused is not None:
        return refused
    wanted = request.query_params.getlist("i")
    if not wanted:
        return _error(400, "InputException", "No instruments given (use i=EXCHANGE:SYMBOL).")
    if len(wanted) > QUOTE_LIMITS[path]:
        return _error(400, "InputException", f"Too many instruments: at most {QUOTE_LIMITS[path]}.")
    data: dict[str, Any] = {}
    for key in wanted:
        item = emulator.listing.by_key.get(key)
        tick = emulator.last.get(item.token) if item is not None else None
        if item is None or tick is None:
            continue  # Kite leaves unknown instruments out
        full = _full_quote(item, tick)
        if path == "/quote":
            data[key] = full
        elif path == "/quote/ohlc":
            data[key] = {k: full[k] for k in ("instrument_token", "last_price", "ohlc")}
        else:
            data[key] = {k: full[k] for k in ("instrument_token", "last_price")}
    return _success(data)


@router.get("/quote")
async def quote(request: Request) -> Response:
    return _quote(request, "/quote")


@router.get("/quote/ohlc")
async def quote_ohlc(request: Request) -> Response:
    return _quote(request, "/quote/ohlc")


@router.get("/quote/ltp")
async def quote_ltp(request: Request) -> Response:
    return _quote(request, "/quote/ltp")


# --------------------------------------------------------------------------- history


def _moment(text: str | None) -> datetime | None:
    for layout in (_WIRE_TIME, "%Y-%m-%d"):
        try:
            return datetime.strptime(text or "", layout).replace(tzinfo=IST)
        except ValueError:
            continue
    return None


@router.get("/instruments/historical/{token}/{interval}")
async def historical(request: Request, token: int, interval: str) -> Response:
    emulator = _emulator(request)
    refused = _guard(request, emulator)
    if refused is not None:
        return refused
    if interval not in INTERVAL_MINUTES:
        return _error(400, "InputException", f"Invalid interval `{interval}`.")
    item = emulator.listing.by_token.get(token)
    if item is None:
        return _error(400, "InputException", "Invalid token.")
    start, end = _moment(request.query_params.get("from")), _moment(request.query_params.get("to"))
    if start is None or end is None:
        return _error(400, "InputException", "Invalid `from` or `to` (yyyy-mm-dd hh:mm:ss).")
    if end < start:
        return _error(400, "InputException", "`from` date cannot be after `to` date.")
    limit = HISTORICAL_INTERVALS[interval]
    if (end - start).total_seconds() > limit * 86400:
        return _error(400, "InputException", f"interval exceeds max limit: {limit} days")
    with_oi = request.query_params.get("oi") == "1"
    spec = item.spec
    rows = candles(
        seed=emulator.options.seed, token=token, reference=spec.close,
        tick=spec.instrument.tick_size, traded=not item.is_index,
        has_oi=spec.open_interest > 0, interval=interval, start=start, end=end,
    )  # fmt: skip
    return _success({"candles": [format_candle(t, bar, with_oi) for t, bar in rows]})


# --------------------------------------------------------------------------- instruments


def _instruments(request: Request, exchange: str | None) -> Response:
    emulator = _emulator(request)
    refused = _guard(request, emulator, auth=False)  # the dump is public at Kite too
    if refused is not None:
        return refused
    return PlainTextResponse(emulator.listing.csv(exchange), media_type="text/csv")


@router.get("/instruments")
async def instruments(request: Request) -> Response:
    return _instruments(request, None)


@router.get("/instruments/{exchange}")
async def instruments_of(request: Request, exchange: str) -> Response:
    return _instruments(request, exchange.upper())


@router.get("/")
async def about(request: Request) -> dict[str, Any]:
    """What this server is and how to use it (the ticker WebSocket shares this path)."""
    return {
        "emulator": "kite",
        "websocket": "ws://HOST:PORT/?api_key=...&access_token=...",
        "test_api_key": core.TEST_API_KEY,
        "test_api_secret": core.TEST_API_SECRET,
        "docs": "docs/brokers/kite.md",
    }
