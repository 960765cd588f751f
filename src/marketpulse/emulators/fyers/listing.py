"""The simulator's universe as Fyers lists it: symbols, fyTokens, topics, symbol-master rows.

Every instrument gets a Fyers ticker (``NSE:SBIN-EQ``, ``NSE:NIFTY50-INDEX``,
``NSE:NIFTY25DECFUT``) and a fyToken of segment prefix ‖ six digits (the expiry ``YYMMDD`` for
derivatives, zeros otherwise) ‖ exchange token, where the exchange token is the simulator's own
token — so ``fyToken[10:]`` is what the data-socket topics carry (spec §1.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Final

from marketpulse.feeds.fyers.instruments import FyersSymbol, encode_rows
from marketpulse.feeds.fyers.topics import PREFIX_OF_SEGMENT, topics_for
from marketpulse.feeds.simulator import SimSpec, Universe
from marketpulse.feeds.simulator.trading_calendar import IST
from marketpulse.model import parse_derivative_name

_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                  "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")  # fmt: skip
# canonical exchange → (HSM segment, exchange code, segment code, master file)
_SEGMENTS: Final = {
    "NSE": ("nse_cm", 10, 10, "NSE_CM"), "NSE_INDEX": ("nse_cm", 10, 10, "NSE_CM"),
    "BSE": ("bse_cm", 12, 10, "BSE_CM"), "BSE_INDEX": ("bse_cm", 12, 10, "BSE_CM"),
    "NFO": ("nse_fo", 10, 11, "NSE_FO"),
}  # fmt: skip
_TYPE_CODES: Final = {"EQ": 0, "INDEX": 10, "FUT": 11, "CE": 14, "PE": 14}


@dataclass(frozen=True, slots=True)
class Listing:
    spec: SimSpec
    row: FyersSymbol
    segment: str
    master: str
    scrip_topic: str
    depth_topic: str | None

    @property
    def symbol(self) -> str:
        return self.row.symbol

    @property
    def is_index(self) -> bool:
        return self.spec.is_index


class FyersListing:
    """Look-ups between simulator tokens, Fyers symbols and topics."""

    def __init__(self, universe: Universe) -> None:
        self.universe = universe
        self.listings = [_listing(spec) for spec in universe.specs]
        self.by_symbol = {item.symbol: item for item in self.listings}
        self.by_sim_token = {item.spec.token: item for item in self.listings}
        self.by_topic: dict[str, Listing] = {}
        for item in self.listings:
            self.by_topic[item.scrip_topic] = item
            if item.depth_topic is not None:
                self.by_topic[item.depth_topic] = item
        self.index_mapping = {
            item.symbol: item.scrip_topic.split("|", 2)[2] for item in self.listings
            if item.is_index
        }  # fmt: skip

    def csv(self, master: str) -> str:
        return encode_rows(item.row for item in self.listings if item.master == master)


def _ticker(spec: SimSpec) -> str:
    instrument = spec.instrument
    exchange = instrument.exchange.value
    if spec.is_index:
        return f"{exchange.removesuffix('_INDEX')}:{instrument.symbol}-INDEX"
    if instrument.instrument_type == "EQ":
        return f"{exchange}:{instrument.symbol}-EQ"
    parts = parse_derivative_name(instrument.symbol)
    if parts is None or instrument.expiry is None:
        raise ValueError(f"{instrument.symbol} is not a derivative name")
    expiry = instrument.expiry
    month = f"{parts.underlying}{expiry.year % 100:02d}{_MONTHS[expiry.month - 1]}"
    suffix = "FUT" if parts.strike is None else f"{parts.strike:g}{parts.instrument_type}"
    return f"NSE:{month}{suffix}"


def _listing(spec: SimSpec) -> Listing:
    instrument = spec.instrument
    segment, exchange_code, segment_code, master = _SEGMENTS[instrument.exchange.value]
    expiry = instrument.expiry
    middle = expiry.strftime("%y%m%d") if expiry else "000000"
    fytoken = f"{PREFIX_OF_SEGMENT[segment]}{middle}{spec.token}"
    ticker = _ticker(spec)
    topics = topics_for(ticker, fytoken)
    kind = instrument.instrument_type
    expiry_epoch = (
        int(datetime.combine(expiry, time(15, 30), IST).astimezone(UTC).timestamp())
        if expiry
        else 0
    )
    parts = parse_derivative_name(instrument.symbol) if expiry else None
    row = FyersSymbol(
        fytoken=fytoken, symbol_details=instrument.name or instrument.symbol,
        instrument_type=_TYPE_CODES.get(kind, 0), lot_size=instrument.lot_size,
        tick_size=instrument.tick_size, isin=instrument.isin or "",
        trading_session="0915-1530|1815-1915:",
        last_update="2025-12-01", expiry=expiry_epoch, symbol=ticker, exchange=exchange_code,
        segment=segment_code, scrip_code=spec.token,
        underlying=parts.underlying if parts else instrument.symbol,
        underlying_scrip_code="", strike=instrument.strike or 0.0,
        option_type=kind if kind in ("CE", "PE") else "XX", underlying_fytoken="",
    )  # fmt: skip
    return Listing(spec, row, segment, master, topics.scrip, topics.depth)
