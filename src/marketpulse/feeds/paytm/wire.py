"""Paytm Money broadcast-feed wire format: little-endian binary packets and JSON preferences.

Pure functions of bytes and strings (no I/O, no logging) shared by the feed, the emulator, the
replay decoder and the benchmark. Facts (type bytes, sizes, offsets, the 1980 epoch) are from
``shared/protocols/paytm.md`` §3–§5; the choices made where it leaves room are in
``docs/brokers/paytm.md``.

Identity: a subscription names ``exchangeType``, ``scripType`` and ``scripId``, but a packet
carries only the bare ``security_id`` (and, through its type byte, whether it is an index). So
marketpulse's token for a Paytm instrument is the live-price API's preference string
``EXCHANGE:SCRIP_ID:SCRIP_TYPE`` (``NSE:2885:EQUITY``, ``NSE:13:INDEX``), and a :class:`KeyBook`
maps what a packet can say — (index or not, security id) — back to the token it was subscribed
under. Two subscribed instruments that the wire cannot tell apart (same id, both indices or both
tradables) are refused by the book instead of being silently mixed up.

Framing: packets are concatenated with no length prefix; the type byte fixes each packet's size.
:func:`decode_frame` never raises: an unknown type byte means the rest of the frame cannot be
delimited, so it stops there (counted), keeping what it decoded; a short trailing packet is
counted the same way; a packet with unreadable values (NaN prices) is skipped alone, since its
size is known. Encoding (for the emulator and tests) is strict and raises ``ValueError``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from marketpulse.model import DepthLevel, Tick

SOURCE: Final = "paytm"
EPOCH_OFFSET: Final = 315_532_800
"""Seconds from 1970-01-01 to 1980-01-01 UTC: Unix seconds = wire seconds + this (spec §4.1)."""

# --------------------------------------------------------------------------- packet types (§4)

LTP, QUOTE, FULL, INDEX_LTP, INDEX_QUOTE, INDEX_FULL = 61, 62, 63, 64, 65, 66

_LTP = struct.Struct("<BfIIBBff")
_QUOTE = struct.Struct("<BfIIBBIfIIIffffffff")
_FULL = struct.Struct("<B" + "IIhhff" * 5 + "fIIBBIfIIIffffffff" + "Ii")
_INDEX_QUOTE = struct.Struct("<BfIBBffffffff")
_INDEX_FULL = struct.Struct("<BfIBBffffffI")

SIZES: Final[dict[int, int]] = {
    LTP: _LTP.size, QUOTE: _QUOTE.size, FULL: _FULL.size,
    INDEX_LTP: _LTP.size, INDEX_QUOTE: _INDEX_QUOTE.size, INDEX_FULL: _INDEX_FULL.size,
}  # fmt: skip
if tuple(SIZES.values()) != (23, 67, 175, 23, 43, 39):  # pragma: no cover
    raise RuntimeError("Paytm packet layouts do not match the spec's sizes")
_SIZE_BY_BYTE: Final = tuple(SIZES.get(code, 0) for code in range(256))

MODE_OF_CODE: Final[dict[int, str]] = {
    LTP: "ltp", QUOTE: "quote", FULL: "full",
    INDEX_LTP: "ltp", INDEX_QUOTE: "quote", INDEX_FULL: "full",
}  # fmt: skip
CODE_FOR: Final[dict[tuple[bool, str], int]] = {
    (False, "ltp"): LTP, (False, "quote"): QUOTE, (False, "full"): FULL,
    (True, "ltp"): INDEX_LTP, (True, "quote"): INDEX_QUOTE, (True, "full"): INDEX_FULL,
}  # fmt: skip
"""(is index, canonical mode) → packet type (spec §3's mode × scripType table)."""

INDEX_BIT: Final = 1 << 32
"""Added to a security id in a :class:`KeyBook` lookup when the packet is an index packet."""

# --------------------------------------------------------------------------- keys

EXCHANGES: Final = ("NSE", "BSE")
SCRIP_TYPES: Final = ("INDEX", "EQUITY", "ETF", "FUTURE", "OPTION")
DERIVATIVES: Final = frozenset({"FUTURE", "OPTION"})
MODE_TYPES: Final[dict[str, str]] = {"ltp": "LTP", "quote": "QUOTE", "full": "FULL"}
"""Canonical mode → the subscription's ``modeType``."""
ACTIONS: Final = ("ADD", "REMOVE")


class InstrumentKeyError(ValueError):
    """A token that is not ``EXCHANGE:SCRIP_ID:SCRIP_TYPE``."""


def canonical_exchange(exchange: str, scrip_type: str) -> str:
    """The canonical exchange of an instrument: NSE equity → ``NSE``, NSE option → ``NFO``,
    BSE index → ``BSE_INDEX``, ..."""
    if scrip_type == "INDEX":
        return f"{exchange}_INDEX"
    if scrip_type in DERIVATIVES:
        return "NFO" if exchange == "NSE" else "BFO"
    return exchange


def make_key(exchange: str, security_id: int | str, scrip_type: str) -> str:
    """``NSE:2885:EQUITY`` — the live-price API's preference string, used as the token."""
    return f"{exchange}:{security_id}:{scrip_type}"


def parse_key(key: str) -> tuple[str, int, str]:
    """``(exchange, security id, scrip type)`` of ``NSE:2885:EQUITY`` (case-insensitive)."""
    parts = [p.strip().upper() for p in key.strip().split(":")]
    if len(parts) != 3 or not parts[1].isdigit():
        raise InstrumentKeyError(
            f"{key!r} is not a Paytm instrument key; write EXCHANGE:SCRIP_ID:SCRIP_TYPE, e.g. "
            "NSE:2885:EQUITY or NSE:13:INDEX (ids are only unique per exchange and kind)"
        )
    exchange, ident, scrip_type = parts
    if exchange not in EXCHANGES:
        raise InstrumentKeyError(f"unknown Paytm exchange {exchange!r} in {key!r}; use NSE or BSE")
    if scrip_type not in SCRIP_TYPES:
        raise InstrumentKeyError(
            f"unknown scrip type {scrip_type!r} in {key!r}; use one of {', '.join(SCRIP_TYPES)}"
        )
    security_id = int(ident)
    if security_id > 0xFFFFFFFF:
        raise InstrumentKeyError(f"security id {ident} in {key!r} does not fit 32 bits")
    return exchange, security_id, scrip_type


def normalize_key(key: str) -> str:
    return make_key(*parse_key(key))


Label = tuple[str, str, bool]
"""What a packet's id stands for: (token, canonical exchange, is a derivative)."""


class KeyBook:
    """Which subscribed token each packet id means, for one connection (or one replay).

    Packets say only (index or not, security id); the book maps that back to the token. A
    second token with the same wire identity is refused (``add`` returns it), because its ticks
    could not be told apart from the first one's.
    """

    __slots__ = ("labels",)

    def __init__(self) -> None:
        self.labels: dict[int, Label] = {}

    @staticmethod
    def lookup(key: str) -> int:
        _, ident, scrip_type = parse_key(key)
        return ident | INDEX_BIT if scrip_type == "INDEX" else ident

    def add(self, keys: Iterable[str]) -> list[str]:
        """Learn ``keys`` (normalised); the ones that clash with a different token are
        returned and not learnt."""
        clashes = []
        for key in keys:
            exchange, ident, scrip_type = parse_key(key)
            token = make_key(exchange, ident, scrip_type)
            lookup = ident | INDEX_BIT if scrip_type == "INDEX" else ident
            held = self.labels.get(lookup)
            if held is not None and held[0] != token:
                clashes.append(token)
                continue
            self.labels[lookup] = (
                token, canonical_exchange(exchange, scrip_type), scrip_type in DERIVATIVES
            )  # fmt: skip
        return clashes

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            token = normalize_key(key)
            lookup = self.lookup(token)
            held = self.labels.get(lookup)
            if held is not None and held[0] == token:
                del self.labels[lookup]

    def learn(self, text: str) -> bool:
        """Apply a subscription message we sent (replay of a capture); ``False`` if ``text``
        is not one."""
        try:
            prefs = decode_preferences(text)
        except ValueError:
            return False
        for pref in prefs:
            if pref.action == "ADD":
                self.add([pref.key])
            else:
                self.remove([pref.key])
        return True


# --------------------------------------------------------------------------- decoding


@dataclass(slots=True)
class Decoded:
    """What one binary frame held: ticks, plus what was skipped and why (at most 8 reasons)."""

    ticks: list[Tick] = field(default_factory=list)
    skipped: int = 0
    unmapped: int = 0
    errors: list[str] = field(default_factory=list)


def _skip(out: Decoded, why: str) -> None:
    out.skipped += 1
    if len(out.errors) < 8:
        out.errors.append(why)


def _r2(value: float) -> float:
    """float32 rupees → the nearest paisa (exact below ₹131,072, spec §4.1)."""
    return round(value * 100.0) / 100.0


def _ms(wire_seconds: int) -> int | None:
    return (wire_seconds + EPOCH_OFFSET) * 1000 if wire_seconds else None


_NO_LABELS: Final[dict[int, Label]] = {}


def decode_frame(
    data: bytes, labels: Mapping[int, Label] | None = None, ts_recv: int | None = None
) -> Decoded:
    """Every packet of one binary frame (never raises).

    ``labels`` is a :class:`KeyBook`'s table: packets for ids it does not hold are counted in
    ``unmapped`` and dropped (late packets after an unsubscribe). Without a table (tests,
    benchmarks) the token is the bare id and the exchange ``NSE``/``NSE_INDEX``.
    """
    out = Decoded()
    table = _NO_LABELS if labels is None else labels
    n = len(data)
    pos = 0
    while pos < n:
        code = data[pos]
        size = _SIZE_BY_BYTE[code]
        if not size:
            _skip(out, f"unknown packet type {code} at offset {pos}; the {n - pos} bytes left "
                       "cannot be delimited")  # fmt: skip
            break
        if pos + size > n:
            _skip(out, f"packet type {code} at offset {pos} needs {size} bytes, {n - pos} left")
            break
        try:
            tick = _decode_packet(data, pos, code, table, labels is None, ts_recv)
        except (ValueError, OverflowError) as exc:  # NaN/inf prices cannot be rounded
            _skip(out, f"packet type {code} has unreadable values: {exc}")
        else:
            if tick is None:
                out.unmapped += 1
            else:
                out.ticks.append(tick)
        pos += size
    return out


def _label(table: Mapping[int, Label], ident: int, index: bool, bare: bool) -> Label | None:
    label = table.get(ident | INDEX_BIT if index else ident)
    if label is None and bare:
        return (str(ident), "NSE_INDEX" if index else "NSE", False)
    return label


def _decode_packet(
    data: bytes, pos: int, code: int, table: Mapping[int, Label], bare: bool,
    ts_recv: int | None,
) -> Tick | None:  # fmt: skip
    if code in (LTP, INDEX_LTP):
        _, ltp, when, ident, _, _, change, pct = _LTP.unpack_from(data, pos)
        index = code == INDEX_LTP
        label = _label(table, ident, index, bare)
        if label is None:
            return None
        return Tick(
            source=SOURCE, token=label[0], exchange=label[1], mode="ltp", ltp=_r2(ltp),
            change=_r2(change), change_pct=_r2(pct),
            ts_exchange=_ms(when) if index else None,
            ts_last_trade=None if index else _ms(when), ts_recv=ts_recv,
        )  # fmt: skip
    if code == QUOTE:
        v = _QUOTE.unpack_from(data, pos)
        label = _label(table, v[3], False, bare)
        if label is None:
            return None
        return Tick(
            source=SOURCE, token=label[0], exchange=label[1], mode="quote", ltp=_r2(v[1]),
            ltq=v[6], atp=_r2(v[7]), volume=v[8], total_buy_qty=v[9], total_sell_qty=v[10],
            open=_r2(v[11]), close=_r2(v[12]), high=_r2(v[13]), low=_r2(v[14]),
            change_pct=_r2(v[15]), change=_r2(v[16]), high_52w=_r2(v[17]), low_52w=_r2(v[18]),
            ts_last_trade=_ms(v[2]), ts_recv=ts_recv,
        )  # fmt: skip
    if code == FULL:
        v = _FULL.unpack_from(data, pos)
        label = _label(table, v[33], False, bare)
        if label is None:
            return None
        bids = [DepthLevel(_r2(v[5 + 6 * i]), v[1 + 6 * i], v[3 + 6 * i]) for i in range(5)]
        asks = [DepthLevel(_r2(v[6 + 6 * i]), v[2 + 6 * i], v[4 + 6 * i]) for i in range(5)]
        return Tick(
            source=SOURCE, token=label[0], exchange=label[1], mode="full", ltp=_r2(v[31]),
            ltq=v[36], atp=_r2(v[37]), volume=v[38], total_buy_qty=v[39], total_sell_qty=v[40],
            open=_r2(v[41]), close=_r2(v[42]), high=_r2(v[43]), low=_r2(v[44]),
            change_pct=_r2(v[45]), change=_r2(v[46]), high_52w=_r2(v[47]), low_52w=_r2(v[48]),
            oi=v[49] if label[2] else None, ts_last_trade=_ms(v[32]), ts_recv=ts_recv,
            bids=bids, asks=asks,
        )  # fmt: skip
    if code == INDEX_QUOTE:
        v = _INDEX_QUOTE.unpack_from(data, pos)
        label = _label(table, v[2], True, bare)
        if label is None:
            return None
        return Tick(
            source=SOURCE, token=label[0], exchange=label[1], mode="quote", ltp=_r2(v[1]),
            open=_r2(v[5]), close=_r2(v[6]), high=_r2(v[7]), low=_r2(v[8]),
            change_pct=_r2(v[9]), change=_r2(v[10]), high_52w=_r2(v[11]), low_52w=_r2(v[12]),
            ts_recv=ts_recv,
        )  # fmt: skip
    v = _INDEX_FULL.unpack_from(data, pos)  # INDEX_FULL: the only code left
    label = _label(table, v[2], True, bare)
    if label is None:
        return None
    return Tick(
        source=SOURCE, token=label[0], exchange=label[1], mode="full", ltp=_r2(v[1]),
        open=_r2(v[5]), close=_r2(v[6]), high=_r2(v[7]), low=_r2(v[8]),
        change_pct=_r2(v[9]), change=_r2(v[10]), ts_exchange=_ms(v[11]), ts_recv=ts_recv,
    )  # fmt: skip


# --------------------------------------------------------------------------- encoding


def wire_seconds(ts_ms: int | None) -> int:
    """Epoch milliseconds → the wire's 1980-epoch seconds (0 = absent)."""
    if ts_ms is None:
        return 0
    value = ts_ms // 1000 - EPOCH_OFFSET
    if not 0 < value <= 0xFFFFFFFF:
        raise ValueError(f"time {ts_ms} ms is outside the 1980-epoch u32 range")
    return value


def _f(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def encode_tick(tick: Tick, *, code: int | None = None, oi_change: int = 0) -> bytes:
    """One packet for ``tick`` (its token a Paytm key); the type follows the key's scrip type
    and the tick's mode unless ``code`` says. ``mode`` byte = type, ``tradable`` = 0 for
    indices, depth padded to five levels. Fields a tick has no place for (OI change) are
    arguments."""
    _, ident, scrip_type = parse_key(tick.token)
    index = scrip_type == "INDEX"
    if code is None:
        code = CODE_FOR[(index, tick.mode)]
    tradable = 0 if index else 1
    try:
        if code in (LTP, INDEX_LTP):
            when = wire_seconds(tick.ts_exchange if code == INDEX_LTP else tick.ts_last_trade)
            return _LTP.pack(code, tick.ltp, when, ident, tradable, code, _f(tick.change),
                             _f(tick.change_pct))  # fmt: skip
        ohlc = (_f(tick.open), _f(tick.close), _f(tick.high), _f(tick.low),
                _f(tick.change_pct), _f(tick.change))  # fmt: skip
        if code == INDEX_QUOTE:
            return _INDEX_QUOTE.pack(code, tick.ltp, ident, tradable, code, *ohlc,
                                     _f(tick.high_52w), _f(tick.low_52w))  # fmt: skip
        if code == INDEX_FULL:
            return _INDEX_FULL.pack(code, tick.ltp, ident, tradable, code, *ohlc,
                                    wire_seconds(tick.ts_exchange))  # fmt: skip
        body = (tick.ltp, wire_seconds(tick.ts_last_trade), ident, tradable, code,
                tick.ltq or 0, _f(tick.atp), tick.volume or 0, tick.total_buy_qty or 0,
                tick.total_sell_qty or 0, *ohlc, _f(tick.high_52w), _f(tick.low_52w))  # fmt: skip
        if code == QUOTE:
            return _QUOTE.pack(code, *body)
        if code == FULL:
            empty = DepthLevel(0.0, 0, 0)
            bids = (list(tick.bids or []) + [empty] * 5)[:5]
            asks = (list(tick.asks or []) + [empty] * 5)[:5]
            depth: list[float | int] = []
            for bid, ask in zip(bids, asks, strict=True):
                depth += [bid.qty, ask.qty, bid.orders, ask.orders, bid.price, ask.price]
            return _FULL.pack(code, *depth, *body, tick.oi or 0, oi_change)
    except struct.error as exc:
        raise ValueError(f"tick {tick.token} cannot be encoded: {exc}") from None
    raise ValueError(f"cannot encode a tick as packet type {code}")


# --------------------------------------------------------------------------- preferences (§3)


@dataclass(frozen=True, slots=True)
class Preference:
    """One entry of a subscription message."""

    action: str  # ADD / REMOVE
    mode: str  # LTP / QUOTE / FULL
    scrip_type: str
    exchange: str
    scrip_id: str

    @property
    def key(self) -> str:
        return make_key(self.exchange, self.scrip_id, self.scrip_type)


def encode_preferences(action: str, mode: str, keys: Sequence[str]) -> str:
    """The JSON array the server expects (``actionType``, ``modeType``, ``scripType``,
    ``exchangeType``, ``scripId`` as a string), one object per key, in the SDK's spelling."""
    if action not in ACTIONS:
        raise ValueError(f"actionType must be ADD or REMOVE, not {action!r}")
    mode_type = MODE_TYPES[mode]
    prefs = []
    for key in keys:
        exchange, ident, scrip_type = parse_key(key)
        prefs.append({"actionType": action, "modeType": mode_type, "scripType": scrip_type,
                      "exchangeType": exchange, "scripId": str(ident)})  # fmt: skip
    return json.dumps(prefs)


def decode_preferences(text: str | bytes) -> list[Preference]:
    """Parse a subscription message; ``ValueError`` says what is wrong with it."""
    try:
        body: Any = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"subscription is not JSON: {exc}") from None
    if not isinstance(body, list):
        raise ValueError("a subscription must be a JSON array of preference objects")
    out = []
    for item in body:
        if not isinstance(item, dict):
            raise ValueError(f"preference {item!r} is not an object")
        values = [item.get(k) for k in ("actionType", "modeType", "scripType", "exchangeType")]
        ident = item.get("scripId")
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)
        if not all(isinstance(v, str) for v in values) or not isinstance(ident, str):
            raise ValueError(f"preference {item!r} lacks a string field")
        action, mode, scrip_type, exchange = (str(v).upper() for v in values)
        if action not in ACTIONS or mode not in MODE_TYPES.values():
            raise ValueError(f"preference {item!r} has an unknown actionType or modeType")
        parse_key(make_key(exchange, ident, scrip_type))  # validates the three parts
        out.append(Preference(action, mode, scrip_type, exchange, ident.strip()))
    return out
