"""The emulated Fyers REST API: login, symbol-token lookup, quotes, history, symbol masters.

Same routes, bodies and envelopes (``{"s": "ok", …}`` / ``{"s": "error", "code", "message"}``)
as Fyers API v3 and the official SDK use, so our client and the SDK work against it unchanged.
``emulator.rest_faults`` makes the next data requests fail with given HTTP statuses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse

from marketpulse.emulators.candles import candles
from marketpulse.emulators.fyers import core
from marketpulse.emulators.fyers.core import FyersEmulator
from marketpulse.emulators.fyers.listing import Listing
from marketpulse.feeds.fyers.auth import app_id_hash
from marketpulse.feeds.fyers.instruments import MASTER_FILES
from marketpulse.feeds.fyers.rest import HISTORY_DAYS, QUOTES_BATCH, SYMBOL_TOKEN_BATCH
from marketpulse.feeds.simulator.trading_calendar import IST

router = APIRouter()

_KITE_INTERVAL: Final = {"1": "minute", "5": "5minute", "15": "15minute", "60": "60minute",
                         "D": "day"}  # fmt: skip


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"s": "error", "code": code, "message": message}, status_code=status)


def _emulator(request: Request) -> FyersEmulator:
    emulator: FyersEmulator = request.app.state.emulator
    emulator.rest_requests.append(f"{request.method} {request.url.path}?{request.url.query}")
    return emulator


def _guard(request: Request, emulator: FyersEmulator, *, bare: bool = False) -> Response | None:
    """An injected fault, or a refused ``Authorization`` (``APP_ID:TOKEN``; bare JWT for the
    symbol-token lookup)."""
    if emulator.rest_faults:
        status = emulator.rest_faults.popleft()
        return _error(status, -429 if status == 429 else -1, "injected fault")
    header = request.headers.get("authorization", "")
    if bare:
        token = header.partition(":")[2] if header.count(".") < 2 else header
    else:
        app_id, _, token = header.partition(":")
        if app_id != core.TEST_APP_ID:
            return _error(401, -16, "Could not authenticate the user (app id)")
    problem = emulator.token_problem(token)
    return None if problem is None else _error(401, -8 if "expired" in problem else -16, problem)


# --------------------------------------------------------------------------- login


@router.get("/api/v3/generate-authcode")
async def generate_authcode(request: Request) -> Response:
    """The browser login: redirects at once with a fresh auth code (no password page)."""
    emulator = _emulator(request)
    params = request.query_params
    if params.get("client_id") != core.TEST_APP_ID:
        return _error(400, -100, "invalid client_id")
    code = f"{core.TEST_AUTH_CODE_PREFIX}_{len(emulator.rest_requests)}"
    query = urlencode({"s": "ok", "code": 200, "auth_code": code, "state": params.get("state", "")})
    return RedirectResponse(f"{params.get('redirect_uri', '')}?{query}", status_code=302)


@router.post("/api/v3/validate-authcode")
async def validate_authcode(request: Request) -> Response:
    emulator = _emulator(request)
    body: dict[str, Any] = await request.json()
    if body.get("grant_type") != "authorization_code":
        return _error(400, -50, "invalid grant_type")
    if body.get("appIdHash") != app_id_hash(core.TEST_APP_ID, core.TEST_SECRET):
        return _error(400, -371, "invalid app id hash")
    code = str(body.get("code", ""))
    if not code.startswith(core.TEST_AUTH_CODE_PREFIX) or code in emulator.used_auth_codes:
        return _error(400, -413, "invalid auth code")
    emulator.used_auth_codes.add(code)
    token = emulator.access_token()
    return JSONResponse({"s": "ok", "code": 200, "message": "", "access_token": token,
                         "refresh_token": token})  # fmt: skip


# --------------------------------------------------------------------------- symbols


@router.post("/data/symbol-token")
async def symbol_token(request: Request) -> Response:
    emulator = _emulator(request)
    refused = _guard(request, emulator, bare=True)
    if refused is not None:
        return refused
    symbols = (await request.json()).get("symbols") or []
    if not isinstance(symbols, list) or len(symbols) > SYMBOL_TOKEN_BATCH:
        return _error(400, -300, f"symbols must be a list of at most {SYMBOL_TOKEN_BATCH}")
    by_symbol = emulator.listing.by_symbol
    valid = {s: by_symbol[s].row.fytoken for s in symbols if s in by_symbol}
    invalid = [s for s in symbols if s not in by_symbol]
    return JSONResponse({"s": "ok", "validSymbol": valid, "invalidSymbol": invalid})


@router.get("/sym_details/index_hsm_mapping.json")
async def index_mapping(request: Request) -> Response:
    return JSONResponse(_emulator(request).listing.index_mapping)


@router.get("/sym_details/{name}.csv")
async def symbol_master(request: Request, name: str) -> Response:
    emulator = _emulator(request)
    if name not in MASTER_FILES:
        return PlainTextResponse("Not Found", status_code=404)
    return PlainTextResponse(emulator.listing.csv(name), media_type="text/csv")


# --------------------------------------------------------------------------- quotes, history


def _quote(item: Listing, tick: Any) -> dict[str, Any]:
    close = tick.close or item.spec.close
    bid = tick.bids[0].price if tick.bids else 0.0
    ask = tick.asks[0].price if tick.asks else 0.0
    exchange, _, short = item.symbol.partition(":")
    return {
        "n": item.symbol, "s": "ok",
        "v": {
            "ch": round(tick.ltp - close, 2), "chp": round((tick.ltp - close) / close * 100, 2),
            "lp": tick.ltp, "spread": round(ask - bid, 2) if bid and ask else 0, "ask": ask,
            "bid": bid, "open_price": tick.open or 0, "high_price": tick.high or 0,
            "low_price": tick.low or 0, "prev_close_price": close, "atp": tick.atp or 0,
            "volume": tick.volume or 0, "short_name": short, "exchange": exchange,
            "description": item.symbol, "original_name": item.symbol, "symbol": item.symbol,
            "fyToken": item.row.fytoken,
            "tt": (tick.ts_exchange or 0) // 1000,
        },
    }  # fmt: skip


@router.get("/data/quotes")
@router.get("/data/quotes/")
async def quotes(request: Request) -> Response:
    emulator = _emulator(request)
    refused = _guard(request, emulator)
    if refused is not None:
        return refused
    wanted = [s for s in request.query_params.get("symbols", "").split(",") if s]
    if not wanted:
        return _error(400, -300, "symbols is required")
    if len(wanted) > QUOTES_BATCH:
        return _error(400, -300, f"at most {QUOTES_BATCH} symbols per request")
    rows = []
    for symbol in wanted:
        item = emulator.listing.by_symbol.get(symbol)
        tick = emulator.last.get(symbol)
        if item is None or tick is None:
            rows.append({"n": symbol, "s": "error", "v": {"errmsg": "invalid symbol"}})
        else:
            rows.append(_quote(item, tick))
    return JSONResponse({"s": "ok", "code": 200, "d": rows})


@router.get("/data/history")
@router.get("/data/history/")
async def history(request: Request) -> Response:
    emulator = _emulator(request)
    refused = _guard(request, emulator)
    if refused is not None:
        return refused
    params = request.query_params
    resolution = params.get("resolution", "")
    if resolution not in _KITE_INTERVAL:
        return _error(400, -300, f"invalid resolution {resolution!r}")
    item = emulator.listing.by_symbol.get(params.get("symbol", ""))
    if item is None:
        return _error(400, -300, "invalid symbol")
    if params.get("date_format", "0") != "0":
        return _error(400, -300, "this emulator serves date_format=0 (epoch seconds) only")
    try:
        first, last = int(params["range_from"]), int(params["range_to"])
    except (KeyError, ValueError):
        return _error(400, -300, "range_from and range_to must be epoch seconds")
    if last < first:
        return _error(400, -300, "range_from is after range_to")
    if last - first > HISTORY_DAYS[resolution] * 86400:
        return _error(400, -300, f"range exceeds {HISTORY_DAYS[resolution]} days")
    spec = item.spec
    rows = candles(
        seed=emulator.options.seed, token=int(spec.token), reference=spec.close,
        tick=spec.instrument.tick_size, traded=not item.is_index, has_oi=False,
        interval=_KITE_INTERVAL[resolution], start=datetime.fromtimestamp(first, IST),
        end=datetime.fromtimestamp(last, IST),
    )  # fmt: skip
    out = [[int(moment.timestamp()), *bar[:5]] for moment, bar in rows]
    if not out:
        return JSONResponse({"s": "no_data", "candles": []})
    return JSONResponse({"s": "ok", "candles": out})


@router.get("/")
async def about(request: Request) -> dict[str, Any]:
    """What this server is (the data socket shares this path)."""
    return {
        "emulator": "fyers",
        "websocket": "ws://HOST:PORT/hsm/v1-5/prod (or ws://HOST:PORT/)",
        "test_app_id": core.TEST_APP_ID,
        "test_secret": core.TEST_SECRET,
        "docs": "docs/brokers/fyers.md",
    }
