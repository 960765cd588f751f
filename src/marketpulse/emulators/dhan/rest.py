"""The emulated REST API: market quotes, historical/intraday charts and the scrip master CSV.

Data endpoints need the ``access-token`` and ``client-id`` headers (else HTTP 401 with Dhan's
``DH-901`` error body). Candles come from the Kite emulator's deterministic generator (a pure
function of seed, instrument and day), so repeated requests agree and 5-minute bars aggregate
1-minute ones; Dhan's 25-minute interval is not emulated (HTTP 400).
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from marketpulse.emulators.candles import candles
from marketpulse.emulators.dhan.core import DhanEmulator
from marketpulse.emulators.quotes import depth_of
from marketpulse.feeds.simulator.trading_calendar import IST

router = APIRouter()

_INTERVALS = {"1": "minute", "5": "5minute", "15": "15minute", "60": "60minute"}


def _error(status: int, code: str, message: str) -> JSONResponse:
    kind = "Invalid_Authentication" if code == "DH-901" else "Input_Exception"
    return JSONResponse(
        {"errorType": kind, "errorCode": code, "errorMessage": message}, status_code=status
    )


async def _body(request: Request) -> tuple[DhanEmulator, Any] | JSONResponse:
    emulator: DhanEmulator = request.app.state.emulator
    emulator.rest_requests.append(request.url.path)
    problem = emulator.access_problem(
        request.headers.get("client-id"), request.headers.get("access-token")
    )
    if problem is not None:
        return _error(
            401, "DH-901", "Client ID or user generated access token is invalid or expired."
        )
    try:
        return emulator, await request.json()
    except ValueError:
        return _error(400, "DH-905", "request body is not JSON")


@router.get("/api-data/api-scrip-master.csv")
async def scrip_master(request: Request) -> Response:
    emulator: DhanEmulator = request.app.state.emulator
    return PlainTextResponse(emulator.scrip_master(), media_type="text/csv")


@router.post("/v2/marketfeed/{kind}")
async def market_quote(kind: str, request: Request) -> Response:
    got = await _body(request)
    if isinstance(got, JSONResponse):
        return got
    emulator, body = got
    if kind not in ("ltp", "ohlc", "quote") or not isinstance(body, dict):
        return _error(400, "DH-905", f"unknown quote kind {kind!r} or bad body")
    data: dict[str, dict[str, Any]] = {}
    for segment, ids in body.items():
        if segment == "dhanClientId" or not isinstance(ids, list):
            continue
        rows = data.setdefault(segment, {})
        for ident in ids:
            tick = emulator.last.get(f"{segment}|{ident}")
            if tick is None:
                continue
            quote: dict[str, Any] = {"last_price": tick.ltp}
            if kind != "ltp":
                quote["ohlc"] = {"open": tick.open or 0.0, "close": tick.close or 0.0,
                                 "high": tick.high or 0.0, "low": tick.low or 0.0}  # fmt: skip
            if kind == "quote":
                quote.update(
                    average_price=tick.atp or 0.0, volume=tick.volume or 0,
                    buy_quantity=tick.total_buy_qty or 0, sell_quantity=tick.total_sell_qty or 0,
                    last_quantity=tick.ltq or 0, oi=tick.oi or 0,
                    net_change=tick.change or 0.0, depth=depth_of(tick),
                )  # fmt: skip
            rows[str(ident)] = quote
    return JSONResponse({"data": data, "status": "success"})


@router.post("/v2/charts/{kind}")
async def charts(kind: str, request: Request) -> Response:
    got = await _body(request)
    if isinstance(got, JSONResponse):
        return got
    emulator, body = got
    if kind not in ("historical", "intraday") or not isinstance(body, dict):
        return _error(400, "DH-905", f"unknown chart kind {kind!r}")
    key = f"{body.get('exchangeSegment')}|{body.get('securityId')}"
    item = emulator.by_key.get(key)
    if item is None:
        return _error(400, "DH-905", f"unknown instrument {key}")
    try:
        if kind == "historical":
            interval = "day"
            start = datetime.combine(datetime.fromisoformat(body["fromDate"]).date(), time(0), IST)
            end = datetime.combine(datetime.fromisoformat(body["toDate"]).date(), time(0), IST)
        else:
            interval = _INTERVALS[str(body.get("interval"))]
            start = datetime.fromisoformat(body["fromDate"]).replace(tzinfo=IST)
            end = datetime.fromisoformat(body["toDate"]).replace(tzinfo=IST)
    except (KeyError, ValueError, TypeError):
        return _error(400, "DH-905", "bad fromDate/toDate/interval")
    if kind == "intraday" and (end - start).days > 90:
        return _error(400, "DH-905", "intraday requests may span at most 90 days")
    spec = item.spec
    rows = [
        (moment, bar)
        for moment, bar in candles(
            seed=emulator.options.seed, token=int(spec.token), reference=spec.close,
            tick=spec.instrument.tick_size, traded=not spec.is_index,
            has_oi=spec.open_interest > 0, interval=interval, start=start, end=end,
        )
        if moment < end  # Dhan's toDate is exclusive
    ]  # fmt: skip
    out: dict[str, list[Any]] = {k: [] for k in ("open", "high", "low", "close", "volume",
                                                  "timestamp")}  # fmt: skip
    if body.get("oi"):
        out["open_interest"] = []
    for moment, bar in rows:
        for name, value in zip(("open", "high", "low", "close", "volume"), bar[:5], strict=True):
            out[name].append(value)
        out["timestamp"].append(moment.astimezone(UTC).timestamp())
        if "open_interest" in out:
            out["open_interest"].append(bar[5])
    return JSONResponse(out)
