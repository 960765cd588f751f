"""The emulated REST side: browser login redirect, ``gettoken``, live price, security master.

- ``GET /merchant-login?apiKey=…&state=…`` stands in for the browser login: it answers 302 to
  the redirect URL with ``success=true&requestToken=…&state=…`` (single-use request token);
- ``POST /accounts/v2/gettoken`` takes ``api_key``/``api_secret_key``/``request_token`` and
  returns the three tokens (HS256-looking JWTs with ``exp`` at 23:59:59 IST), else 401 with
  ``{"errors": [{"message": …}]}``;
- ``GET /data/v1/price/live?mode=…&pref=EXCH:ID:TYPE,…`` needs ``x-jwt-token`` (access or read
  token, else 401) and answers ``{"data": [...]}`` with spec §7's fields, 1980-epoch times and
  ``found: false`` for unknown prefs;
- ``GET /data/v1/scrips/security_master.csv`` needs no token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from marketpulse.emulators.paytm.core import TEST_API_KEY, TEST_API_SECRET, PaytmEmulator
from marketpulse.feeds.paytm import wire
from marketpulse.model import Tick

router = APIRouter()


def _errors(status: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status)


@router.get("/merchant-login")
async def merchant_login(request: Request) -> Response:
    emulator: PaytmEmulator = request.app.state.emulator
    if request.query_params.get("apiKey") != TEST_API_KEY:
        return PlainTextResponse("unknown apiKey", status_code=400)
    state = request.query_params.get("state", "")
    token = emulator.issue_request_token()
    return RedirectResponse(
        f"{emulator.redirect_url}?success=true&requestToken={token}&state={state}", 302
    )


@router.post("/accounts/v2/gettoken")
async def gettoken(request: Request) -> Response:
    emulator: PaytmEmulator = request.app.state.emulator
    emulator.rest_requests.append(request.url.path)
    try:
        body: Any = await request.json()
    except ValueError:
        return _errors(400, "request body is not JSON")
    if not isinstance(body, dict):
        return _errors(400, "request body must be an object")
    if body.get("api_key") != TEST_API_KEY or body.get("api_secret_key") != TEST_API_SECRET:
        return _errors(401, "Invalid api_key or api_secret_key")
    request_token = body.get("request_token")
    if request_token not in emulator.request_tokens:
        return _errors(401, "Invalid or expired request_token")
    emulator.request_tokens.discard(request_token)
    tokens = emulator.tokens
    return JSONResponse({"access_token": tokens.access, "public_access_token": tokens.public,
                         "read_access_token": tokens.read, "merchant_id": "MP0001",
                         "channel_id": "API", "api_key": TEST_API_KEY})  # fmt: skip


def _wire_time(ts_ms: int | None) -> int:
    return 0 if ts_ms is None else ts_ms // 1000 - wire.EPOCH_OFFSET


def _entry(tick: Tick, mode: str, ident: int, index: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "tradable": not index,
        "mode": mode,
        "security_id": ident,
        "found": True,
        "last_price": tick.ltp,
        "change_percent": round(tick.change_pct or 0.0, 2),
        "change_absolute": round(tick.change or 0.0, 2),
        "last_trade_time": _wire_time(tick.ts_last_trade),
        "last_update_time": _wire_time(tick.ts_exchange or tick.ts_last_trade),
    }
    if mode == "LTP":
        return entry
    entry["ohlc"] = {
        "open": tick.open or 0.0,
        "high": tick.high or 0.0,
        "low": tick.low or 0.0,
        "close": tick.close or 0.0,
    }
    entry["52_week_high"] = tick.high_52w or 0.0
    entry["52_week_low"] = tick.low_52w or 0.0
    if not index:
        entry.update(
            last_traded_quantity=tick.ltq or 0,
            average_traded_price=tick.atp or 0.0,
            volume_traded=tick.volume or 0,
            total_buy_quantity=tick.total_buy_qty or 0,
            total_sell_quantity=tick.total_sell_qty or 0,
            oi=tick.oi or 0,
            change_oi=0,
        )
    if mode == "FULL" and not index:
        entry["depth"] = {
            "buy": [
                {"quantity": d.qty, "price": d.price, "orders": d.orders} for d in tick.bids or []
            ],
            "sell": [
                {"quantity": d.qty, "price": d.price, "orders": d.orders} for d in tick.asks or []
            ],
        }
    return entry  # fmt: skip


@router.get("/data/v1/price/live")
async def live_price(request: Request) -> Response:
    emulator: PaytmEmulator = request.app.state.emulator
    emulator.rest_requests.append(str(request.url))
    if not emulator.rest_token_ok(request.headers.get("x-jwt-token")):
        return _errors(401, "Invalid or expired token")
    mode = request.query_params.get("mode", "")
    if mode not in ("LTP", "QUOTE", "FULL"):
        return _errors(400, f"invalid mode {mode!r}")
    data = []
    for pref in request.query_params.get("pref", "").split(","):
        if not pref.strip():
            continue
        try:
            exchange, ident, scrip_type = wire.parse_key(pref)
        except ValueError:
            data.append({"found": False, "security_id": 0})
            continue
        tick = emulator.last.get(wire.make_key(exchange, ident, scrip_type))
        if tick is None:
            data.append({"found": False, "security_id": ident})
        else:
            data.append(_entry(tick, mode, ident, scrip_type == "INDEX"))
    return JSONResponse({"status": "success", "data": data})


@router.get("/data/v1/scrips/{file_name}")
async def scrips(file_name: str, request: Request) -> Response:
    emulator: PaytmEmulator = request.app.state.emulator
    if file_name != "security_master.csv":
        return PlainTextResponse("not found", status_code=404)
    return PlainTextResponse(emulator.security_master(), media_type="text/csv")
