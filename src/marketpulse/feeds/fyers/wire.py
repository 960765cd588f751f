"""The Fyers API v3 HSM data-socket protocol: pure encoders and decoders, no I/O.

Every frame is ``u16 length ‖ u8 type ‖ body``, all integers big-endian (shared/protocols/fyers.md
§2-§3). Client requests carry TLV fields (``u8 id, u16 len, value``); the server's data message
(type 6) carries records that either *introduce* a topic (snapshot ``'S'``: topic id, topic name,
positional ``i32`` values, multiplier, precision and three strings) or *patch* it (update ``'U'``:
only positions that changed, the rest ``0x80000000``; lite ``'L'``: the LTP alone). Updates are
meaningless without the snapshot, so decoding data is done against a :class:`HsmState` that holds
the merged values per topic id — still pure: the state is plain data passed in.

Both directions live here because the emulator speaks the server side with the same code the feed
reads, and the tests round-trip one through the other. Malformed input raises :class:`WireError`
for a frame whose header is unusable; a bad record inside a data message stops that message only
(the records before it are kept, the skipped count and the reason are returned), because record
boundaries cannot be found again after a bad one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from marketpulse.model import DepthLevel, Mode, Tick

SOURCE: Final = "fyers"

# request / response types (§4)
AUTH: Final = 1
ACK: Final = 3
SUBSCRIBE: Final = 4
UNSUBSCRIBE: Final = 5
DATA: Final = 6
PAUSE: Final = 7
RESUME: Final = 8
PING: Final = 11
MODE: Final = 12
CUSTOM: Final = 51
STATUS_TYPES: Final = frozenset({SUBSCRIBE, UNSUBSCRIBE, PAUSE, RESUME, MODE})

# record types (§3.4)
SNAPSHOT: Final = 83  # 'S'
UPDATE: Final = 85  # 'U'
LITE: Final = 76  # 'L'

NO_VALUE: Final = -2147483648
"""``0x80000000``: "no value" in a snapshot, "unchanged" in an update."""
PING_FRAME: Final = b"\x00\x01\x0b"
DEFAULT_CHANNEL: Final = 11
MAX_TOPICS_PER_FRAME: Final = 1500
CLIENT_SOURCE: Final = "marketpulse"
FULL_MODE: Final = 0x46  # 'F'
LITE_MODE: Final = 0x4C  # 'L'
SYMBOL_LIMIT_CODE: Final = 51001

SCRIP_FIELDS: Final = 21
INDEX_FIELDS: Final = 6
DEPTH_FIELDS: Final = 30
DEPTH_LEVELS: Final = 5

# sf positions (§3.5)
LTP, VOLUME, LTT, FEED_TIME, BID_SIZE, ASK_SIZE, BID, ASK, LTQ, TBQ, TSQ, ATP, OI = range(13)
LOW, HIGH, YHIGH, YLOW, LOWER_CKT, UPPER_CKT, OPEN, CLOSE = range(13, 21)
# if positions
I_LTP, I_CLOSE, I_FEED_TIME, I_HIGH, I_LOW, I_OPEN = range(6)
SCRIP_PRICES: Final = frozenset({LTP, BID, ASK, ATP, LOW, HIGH, YHIGH, YLOW, LOWER_CKT, UPPER_CKT,
                                 OPEN, CLOSE})  # fmt: skip
INDEX_PRICES: Final = frozenset({I_LTP, I_CLOSE, I_HIGH, I_LOW, I_OPEN})
DEPTH_PRICES: Final = frozenset(range(10))

SEGMENT_EXCHANGE: Final[dict[str, str]] = {
    "nse_cm": "NSE", "nse_fo": "NFO", "cde_fo": "CDS", "nse_com": "NCO",
    "mcx_fo": "MCX", "bse_cm": "BSE", "bse_fo": "BFO", "bcs_fo": "BCD",
}  # fmt: skip
"""HSM segment → canonical exchange (indices: ``NSE_INDEX``/``BSE_INDEX``, see below)."""
INDEX_EXCHANGE: Final[dict[str, str]] = {"nse_cm": "NSE_INDEX", "bse_cm": "BSE_INDEX"}
SEGMENT_PREFIX: Final[dict[str, str]] = {
    "nse_cm": "NSE", "nse_fo": "NSE", "cde_fo": "NSE", "nse_com": "NSE",
    "mcx_fo": "MCX", "bse_cm": "BSE", "bse_fo": "BSE", "bcs_fo": "BSE",
}  # fmt: skip
"""HSM segment → the exchange prefix of a Fyers symbol (``NSE:SBIN-EQ``)."""

_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_I32: Final = struct.Struct(">i")
_U64: Final = struct.Struct(">Q")
_HEADER: Final = struct.Struct(">HB")
_DATA_HEAD: Final = struct.Struct(">IH")
_TAIL: Final = struct.Struct(">2xHB")  # skipped bytes, multiplier, precision
_VALUES: dict[int, struct.Struct] = {}


class WireError(ValueError):
    """A frame that cannot be read; the message says where it went wrong."""


def _values_struct(count: int) -> struct.Struct:
    layout = _VALUES.get(count)
    if layout is None:
        layout = _VALUES[count] = struct.Struct(f">{count}i")
    return layout


# --------------------------------------------------------------------------- client → server


def _frame(kind: int, fields: Sequence[tuple[int, bytes]]) -> bytes:
    """``u16 length, u8 type, u8 field count`` then TLV fields, with a *correct* length."""
    body = bytearray((kind, len(fields)))
    for field_id, value in fields:
        body.append(field_id)
        body += _U16.pack(len(value))
        body += value
    return _U16.pack(len(body)) + bytes(body)


def encode_auth(hsm_key: str, source: str = CLIENT_SOURCE) -> bytes:
    """The in-band login (§2.1): hsm_key, mode ``'P'``, stream flag, source name."""
    return _frame(AUTH, [(1, hsm_key.encode()), (2, b"P"), (3, b"\x01"), (4, source.encode())])


def channel_mask(channel: int) -> bytes:
    if not 0 <= channel < 64:
        raise ValueError(f"channel {channel} is outside 0-63")
    return _U64.pack(1 << channel)


def encode_mode(lite: bool, channel: int = DEFAULT_CHANNEL) -> bytes:
    """Lite or full mode for ``channel`` (§2.2)."""
    return _frame(
        MODE, [(1, channel_mask(channel)), (2, bytes((LITE_MODE if lite else FULL_MODE,)))]
    )


def _topics_block(topics: Sequence[str]) -> bytes:
    if len(topics) > MAX_TOPICS_PER_FRAME:
        raise ValueError(f"{len(topics)} topics in one frame; at most {MAX_TOPICS_PER_FRAME}")
    block = bytearray(_U16.pack(len(topics)))
    for topic in topics:
        raw = topic.encode()
        if len(raw) > 255:
            raise ValueError(f"topic {topic!r} is longer than 255 bytes")
        block.append(len(raw))
        block += raw
    return bytes(block)


def encode_subscribe(topics: Sequence[str], channel: int = DEFAULT_CHANNEL) -> bytes:
    return _frame(SUBSCRIBE, [(1, _topics_block(topics)), (2, bytes((channel,)))])


def encode_unsubscribe(topics: Sequence[str], channel: int = DEFAULT_CHANNEL) -> bytes:
    return _frame(UNSUBSCRIBE, [(1, _topics_block(topics)), (2, bytes((channel,)))])


def encode_pause(channel: int) -> bytes:
    return _frame(PAUSE, [(1, channel_mask(channel))])


def encode_resume(channel: int) -> bytes:
    return _frame(RESUME, [(1, channel_mask(channel))])


def encode_ack(message_number: int) -> bytes:
    return _frame(ACK, [(1, _U32.pack(message_number))])


def chunks(topics: Sequence[str], size: int = MAX_TOPICS_PER_FRAME) -> list[list[str]]:
    """Topics split into frames of at most ``size`` (the server's per-frame cap)."""
    return [list(topics[i : i + size]) for i in range(0, len(topics), size)]


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """One decoded client frame (the emulator's view). ``fields`` maps TLV id → value."""

    kind: int
    fields: dict[int, bytes] = field(default_factory=dict)

    @property
    def hsm_key(self) -> str:
        return self.fields.get(1, b"").decode(errors="replace")

    @property
    def source(self) -> str:
        return self.fields.get(4, b"").decode(errors="replace")

    @property
    def channels(self) -> list[int]:
        """Channels named by a mode/pause/resume bitmask (field 1)."""
        raw = self.fields.get(1, b"")
        if len(raw) != 8:
            raise WireError(f"request type {self.kind}: channel mask of {len(raw)} bytes, not 8")
        mask = _U64.unpack(raw)[0]
        return [n for n in range(64) if mask >> n & 1]

    @property
    def lite(self) -> bool:
        value = self.fields.get(2, b"")
        if value not in (b"F", b"L"):
            raise WireError(f"mode request with mode byte {value!r} (want 'F' or 'L')")
        return value == b"L"

    @property
    def channel(self) -> int:
        value = self.fields.get(2, b"")
        if len(value) != 1:
            raise WireError("subscription request without a 1-byte channel (field 2)")
        return value[0]

    @property
    def topics(self) -> list[str]:
        raw = self.fields.get(1)
        if raw is None or len(raw) < 2:
            raise WireError("subscription request without a topics block (field 1)")
        count = _U16.unpack_from(raw)[0]
        topics, pos = [], 2
        for index in range(count):
            if pos >= len(raw) or pos + 1 + raw[pos] > len(raw):
                raise WireError(f"topics block cut short at topic {index} of {count}")
            size = raw[pos]
            topics.append(raw[pos + 1 : pos + 1 + size].decode(errors="replace"))
            pos += 1 + size
        return topics

    @property
    def message_number(self) -> int:
        raw = self.fields.get(1, b"")
        if len(raw) != 4:
            raise WireError(f"acknowledgement with a {len(raw)}-byte message number")
        return int(_U32.unpack(raw)[0])


def decode_client_frame(data: bytes) -> ClientRequest:
    """A client frame. The length prefix is *not* checked: the official SDK writes wrong ones
    (§2 length note), so the WebSocket message boundary is what counts."""
    if len(data) < 3:
        raise WireError(f"client frame of {len(data)} bytes (at least 3)")
    kind = data[2]
    if kind == PING:
        return ClientRequest(PING)
    if len(data) < 4:
        raise WireError(f"client frame type {kind} without a field count")
    count, pos, fields = data[3], 4, {}
    for index in range(count):
        if pos + 3 > len(data):
            raise WireError(f"client frame type {kind}: field {index} of {count} is missing")
        field_id = data[pos]
        size = _U16.unpack_from(data, pos + 1)[0]
        end = pos + 3 + size
        if end > len(data):
            raise WireError(f"client frame type {kind}: field {field_id} is cut short")
        fields[field_id] = bytes(data[pos + 3 : end])
        pos = end
    return ClientRequest(kind, fields)


# --------------------------------------------------------------------------- server → client


@dataclass(frozen=True, slots=True)
class AuthResponse:
    ok: bool
    ack_count: int


@dataclass(frozen=True, slots=True)
class StatusResponse:
    """Reply to subscribe (4), unsubscribe (5), pause (7), resume (8) or mode (12)."""

    kind: int
    ok: bool


@dataclass(frozen=True, slots=True)
class CustomMessage:
    """Type 51: the server's own error text (e.g. 51001, symbol limit of the plan)."""

    code: int
    message: str
    ref_type: int | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    topic_id: int
    topic: str
    values: tuple[int, ...]
    multiplier: int = 1
    precision: int = 2
    exchange: str = ""
    token: str = ""
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class Update:
    topic_id: int
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Lite:
    topic_id: int
    ltp: int


Record = Snapshot | Update | Lite


@dataclass(frozen=True, slots=True)
class DataMessage:
    number: int
    records: list[Record]
    skipped: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OtherMessage:
    """A response type the protocol defines but we do not use (throttling, option chain, …)."""

    kind: int


ServerMessage = AuthResponse | StatusResponse | CustomMessage | DataMessage | OtherMessage


def encode_auth_response(ok: bool, ack_count: int) -> bytes:
    return _frame(AUTH, [(1, b"K" if ok else b"N"), (2, _U32.pack(ack_count))])


def encode_status(kind: int, ok: bool) -> bytes:
    return _frame(kind, [(1, b"K" if ok else b"N")])


def encode_custom(code: int, message: str, ref_type: int | None = None) -> bytes:
    fields = [(1, _I32.pack(code)), (2, message.encode())]
    if ref_type is not None:
        fields.append((3, bytes((ref_type,))))
    return _frame(CUSTOM, fields)


def _short(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"{text!r} is longer than 255 bytes")
    return bytes((len(raw),)) + raw


def encode_record(record: Record) -> bytes:
    if isinstance(record, Snapshot):
        values = record.values
        return b"".join((
            bytes((SNAPSHOT,)), _U16.pack(record.topic_id), _short(record.topic),
            bytes((len(values),)), _values_struct(len(values)).pack(*values),
            _TAIL.pack(record.multiplier, record.precision),
            _short(record.exchange), _short(record.token), _short(record.symbol),
        ))  # fmt: skip
    if isinstance(record, Update):
        values = record.values
        return (
            bytes((UPDATE,))
            + _U16.pack(record.topic_id)
            + bytes((len(values),))
            + _values_struct(len(values)).pack(*values)
        )
    return bytes((LITE,)) + _U16.pack(record.topic_id) + _I32.pack(record.ltp)


def encode_data(number: int, records: Sequence[Record]) -> bytes:
    """One data message (type 6) numbered ``number``."""
    body = bytes((DATA,)) + _DATA_HEAD.pack(number, len(records))
    body += b"".join(encode_record(r) for r in records)
    if len(body) > 0xFFFF:
        raise ValueError(f"data message of {len(body)} bytes does not fit the u16 length")
    return _U16.pack(len(body)) + body


def _read_short(data: bytes, pos: int) -> tuple[str, int]:
    size = data[pos]
    end = pos + 1 + size
    if end > len(data):
        raise IndexError
    return data[pos + 1 : end].decode(errors="replace"), end


def _decode_records(data: bytes, count: int) -> DataMessage:
    number = _U32.unpack_from(data, 3)[0]
    records: list[Record] = []
    append = records.append
    pos, size = 9, len(data)
    unpack_u16 = _U16.unpack_from
    for index in range(count):
        try:
            kind = data[pos]
            topic_id = unpack_u16(data, pos + 1)[0]
            if kind == UPDATE:
                n = data[pos + 3]
                end = pos + 4 + 4 * n
                if end > size:
                    raise IndexError
                append(Update(topic_id, _values_struct(n).unpack_from(data, pos + 4)))
                pos = end
            elif kind == SNAPSHOT:
                topic, pos = _read_short(data, pos + 3)
                n = data[pos]
                values = _values_struct(n).unpack_from(data, pos + 1)
                multiplier, precision = _TAIL.unpack_from(data, pos + 1 + 4 * n)
                exchange, pos = _read_short(data, pos + 6 + 4 * n)
                token, pos = _read_short(data, pos)
                symbol, pos = _read_short(data, pos)
                append(Snapshot(topic_id, topic, values, multiplier, precision, exchange, token,
                                symbol))  # fmt: skip
            elif kind == LITE:
                if pos + 7 > size:
                    raise IndexError
                append(Lite(topic_id, _I32.unpack_from(data, pos + 3)[0]))
                pos += 7
            else:
                return DataMessage(number, records, count - index,
                                   f"record {index} has unknown type {kind}")  # fmt: skip
        except (IndexError, struct.error):
            return DataMessage(number, records, count - index,
                               f"record {index} of {count} is cut short")  # fmt: skip
    if pos != size:
        return DataMessage(number, records, 0, f"{size - pos} bytes after the last record")
    return DataMessage(number, records)


def _status_byte(data: bytes, kind: int) -> bool:
    # u8 count, u8 id 1, u16 len 1, 'K'/'N'
    if len(data) < 8:
        raise WireError(f"response type {kind} of {len(data)} bytes is cut short")
    return data[7] == 0x4B


def decode_server_frame(data: bytes) -> ServerMessage:
    """One server frame → message. :class:`WireError` when its header cannot be read."""
    if len(data) < 3:
        raise WireError(f"frame of {len(data)} bytes (at least 3)")
    kind = data[2]
    if kind == DATA:
        if len(data) < 9:
            raise WireError(f"data message of {len(data)} bytes has no header")
        return _decode_records(data, _U16.unpack_from(data, 7)[0])
    if kind == AUTH:
        ok = _status_byte(data, kind)
        if len(data) >= 15 and data[8] == 2:
            return AuthResponse(ok, int(_U32.unpack_from(data, 11)[0]))
        return AuthResponse(ok, 0)
    if kind in STATUS_TYPES:
        return StatusResponse(kind, _status_byte(data, kind))
    if kind == CUSTOM:
        return _decode_custom(data)
    return OtherMessage(kind)


def _decode_custom(data: bytes) -> CustomMessage:
    if len(data) < 4:
        raise WireError("custom message without a field count")
    code, text, ref = None, "", None
    pos = 4
    for _ in range(data[3]):
        if pos + 3 > len(data):
            raise WireError("custom message cut short")
        field_id = data[pos]
        size = _U16.unpack_from(data, pos + 1)[0]
        value = data[pos + 3 : pos + 3 + size]
        if len(value) != size:
            raise WireError(f"custom message field {field_id} cut short")
        if field_id == 1 and size == 4:
            code = _I32.unpack(value)[0]
        elif field_id == 2:
            text = value.decode(errors="replace")
        elif field_id == 3 and size == 1:
            ref = value[0]
        pos += 3 + size
    if code is None:
        raise WireError("custom message without a code (field 1)")
    return CustomMessage(code, text, ref)


# --------------------------------------------------------------------------- topics


def topic_kind(topic: str) -> str:
    return topic[:2]


def topic_segment(topic: str) -> str:
    return topic.split("|", 2)[1] if topic.count("|") >= 2 else ""


def symbol_from_snapshot(snapshot: Snapshot) -> str:
    """The Fyers symbol a snapshot describes, from its own strings (``NSE:SBIN-EQ``) — used
    when nothing else labels a topic (replay of a capture)."""
    prefix = SEGMENT_PREFIX.get(snapshot.exchange or topic_segment(snapshot.topic), "NSE")
    return f"{prefix}:{snapshot.symbol}" if snapshot.symbol else snapshot.topic


# --------------------------------------------------------------------------- state and ticks

_TICK_POSITIONAL: Final = (
    "source", "token", "exchange", "mode", "ltp", "symbol", "ltq", "atp", "volume",
    "total_buy_qty", "total_sell_qty", "open", "high", "low", "close", "change", "change_pct",
    "oi", "oi_day_high", "oi_day_low", "upper_circuit", "lower_circuit", "high_52w", "low_52w",
    "ts_exchange", "ts_last_trade", "ts_recv", "bids", "asks",
)  # fmt: skip
if Tick.__struct_fields__ != _TICK_POSITIONAL:  # pragma: no cover
    raise ImportError(
        "marketpulse.model.Tick fields were reordered; update _TICK_POSITIONAL and the "
        "positional Tick(...) calls and argument maps in marketpulse.feeds.fyers.wire"
    )
# Positions in the Tick argument list that the decoder fills per tick or derives.
_A_MODE, _A_LTP, _A_CLOSE, _A_CHANGE, _A_PCT = 3, 4, 14, 15, 16
_A_TS_EXCHANGE, _A_TS_LAST_TRADE, _A_TS_RECV, _A_BIDS, _A_ASKS = 24, 25, 26, 27, 28

_LTP_MODE: Final = Mode.LTP.value
_QUOTE_MODE: Final = Mode.QUOTE.value
_FULL_MODE: Final = Mode.FULL.value

# How a raw value becomes a Tick argument.
_SKIP, _INT, _PRICE, _MILLIS = 0, 1, 2, 3
_ArgMap = tuple[tuple[int, int], ...]
"""Raw position → (Tick argument index, conversion); positions past the end are skipped."""


def _arg_map(fields: dict[int, tuple[str, int]], size: int) -> _ArgMap:
    return tuple(
        (_TICK_POSITIONAL.index(fields[i][0]), fields[i][1]) if i in fields else (0, _SKIP)
        for i in range(size)
    )


# BID/ASK and their sizes are read from the raw values only for a full tick without depth.
_SCRIP_MAP: Final = _arg_map({
    LTP: ("ltp", _PRICE), VOLUME: ("volume", _INT), LTT: ("ts_last_trade", _MILLIS),
    FEED_TIME: ("ts_exchange", _MILLIS), LTQ: ("ltq", _INT), TBQ: ("total_buy_qty", _INT),
    TSQ: ("total_sell_qty", _INT), ATP: ("atp", _PRICE), OI: ("oi", _INT), LOW: ("low", _PRICE),
    HIGH: ("high", _PRICE), YHIGH: ("high_52w", _PRICE), YLOW: ("low_52w", _PRICE),
    LOWER_CKT: ("lower_circuit", _PRICE), UPPER_CKT: ("upper_circuit", _PRICE),
    OPEN: ("open", _PRICE), CLOSE: ("close", _PRICE),
}, SCRIP_FIELDS)  # fmt: skip
_INDEX_MAP: Final = _arg_map({
    I_LTP: ("ltp", _PRICE), I_CLOSE: ("close", _PRICE), I_FEED_TIME: ("ts_exchange", _MILLIS),
    I_HIGH: ("high", _PRICE), I_LOW: ("low", _PRICE), I_OPEN: ("open", _PRICE),
}, INDEX_FIELDS)  # fmt: skip
_CHANGE_INPUTS: Final = frozenset({_A_LTP, _A_CLOSE})


def _set_change(args: list[Any]) -> None:
    """``change``/``change_pct`` from the cached ltp and close: :func:`price_change`, inlined
    (same arithmetic, so the same floats) because it runs for nearly every update."""
    ltp = args[_A_LTP]
    close = args[_A_CLOSE]
    if ltp is None or close is None or close == 0:
        args[_A_CHANGE] = args[_A_PCT] = None
    else:
        change = ltp - close
        args[_A_CHANGE] = change
        args[_A_PCT] = change * 100.0 / close


def scaled_args(
    values: Sequence[int], divisor: float, label: str, exchange: str, arg_map: _ArgMap
) -> list[Any]:
    """The positional ``Tick`` arguments (quote layout) for merged raw ``values``: prices
    divided, times in ms, ``NO_VALUE`` → ``None``. The decoder keeps this per topic and then
    rescales only the positions an update changes; this full build is the reference for that
    cache (``mode`` and ``ts_recv`` are filled in per tick)."""
    args: list[Any] = [None] * len(_TICK_POSITIONAL)
    args[0], args[1], args[2], args[_A_MODE] = SOURCE, label, exchange, _QUOTE_MODE
    for i, (j, op) in enumerate(arg_map[: len(values)]):
        raw = values[i]
        if op == _SKIP or raw == NO_VALUE:
            continue
        args[j] = raw / divisor if op == _PRICE else raw * 1000 if op == _MILLIS else raw
    _set_change(args)
    return args


_Merge = Callable[[list[int], list[Any], float, bytes, int], bool | None]
"""A compiled merge for one layout of an update record: ``(values, args, divisor, data, start)``
→ True if something changed, False if not, None if the layout guess was wrong (then nothing
was touched and the general merge runs)."""
_MERGE_CACHE_LIMIT: Final = 4096
_SCRIP_MERGES: dict[bytes, _Merge] = {}
_INDEX_MERGES: dict[bytes, _Merge] = {}
_NO_VALUE_BYTES: Final = _I32.pack(NO_VALUE)
_CHANGE_SOURCE: Final = (
    f"    if changed:\n"
    f"        ltp = args[{_A_LTP}]\n"
    f"        close = args[{_A_CLOSE}]\n"
    f"        if ltp is None or close is None or close == 0:\n"
    f"            args[{_A_CHANGE}] = args[{_A_PCT}] = None\n"
    f"        else:\n"
    f"            change = ltp - close\n"
    f"            args[{_A_CHANGE}] = change\n"
    f"            args[{_A_PCT}] = change * 100.0 / close\n"
)  # the arithmetic of _set_change / price_change, so the same floats


def _compile_merge(signature: bytes, arg_map: _ArgMap) -> _Merge:
    """The merge for an update record whose i-th value starts with byte ``signature[i]``.

    Why generated code: an update names a handful of the 21 positions, and a generic loop over
    (position, argument, conversion) triples costs more per record than everything else on the
    path together; the layouts that occur are few (the present positions), so each gets
    straight-line code once and is cached. Only integers from this module's tables are
    written into the source — nothing from the wire.

    A value is presumed absent when its top byte is ``0x80``, as ``NO_VALUE``'s is; the
    compiled code checks those values in full (a few real negative numbers start with
    ``0x80`` too) and returns None, having changed nothing, when the guess was wrong.
    """
    present_fmt, absent_fmt, expected = [">"], [">"], []
    ops: list[tuple[int, int, int]] = []
    run = 0
    for i, top in enumerate(signature):
        if top == 0x80:
            present_fmt.append("4x")
            run += 1
            continue
        if run:
            absent_fmt.append(f"{4 * run}s")
            expected.append(_NO_VALUE_BYTES * run)
            run = 0
        present_fmt.append("i")
        absent_fmt.append("4x")
        j, op = arg_map[i] if i < len(arg_map) else (0, _SKIP)
        ops.append((i, j, op))
    if run:
        absent_fmt.append(f"{4 * run}s")
        expected.append(_NO_VALUE_BYTES * run)
    lines = ["def merge(values, args, divisor, data, start):"]
    if expected:
        lines.append("    if absent(data, start) != expected:\n        return None")
    if not ops:
        lines.append("    return False")
    else:
        names = [f"v{i}" for i, _, _ in ops]
        lines.append(f"    {', '.join(names)}, = present(data, start)\n    changed = False")
        for (i, j, op), name in zip(ops, names, strict=True):
            lines.append(f"    if values[{i}] != {name}:\n        values[{i}] = {name}")
            if op == _PRICE:
                lines.append(f"        args[{j}] = {name} / divisor")
            elif op == _INT:
                lines.append(f"        args[{j}] = {name}")
            elif op == _MILLIS:
                lines.append(f"        args[{j}] = {name} * 1000")
            lines.append("        changed = True")
        if any(op != _SKIP and j in _CHANGE_INPUTS for _, j, op in ops):
            lines.append(_CHANGE_SOURCE)
        lines.append("    return changed")
    namespace: dict[str, Any] = {
        "present": struct.Struct("".join(present_fmt)).unpack_from,
        "absent": struct.Struct("".join(absent_fmt)).unpack_from,
        "expected": tuple(expected),
    }
    exec("\n".join(lines), namespace)  # source built from integers only, see above
    merge: _Merge = namespace["merge"]
    return merge


class TopicState:
    """One topic's merged raw values (``NO_VALUE`` where the server gave none) and, kept in
    step with them, the scaled positional ``Tick`` arguments (``args``) so an update only
    rescales the positions it changes."""

    __slots__ = ("arg_map", "args", "divisor", "exchange", "kind", "label", "merges",
                 "quote_fast", "topic", "values")  # fmt: skip

    def __init__(self, snapshot: Snapshot, label: str) -> None:
        self.topic = snapshot.topic
        self.kind = topic_kind(snapshot.topic)
        self.values = list(snapshot.values)
        scale = 10**snapshot.precision * (snapshot.multiplier or 1)
        self.divisor = float(scale)
        segment = snapshot.exchange or topic_segment(snapshot.topic)
        table = INDEX_EXCHANGE if self.kind == "if" else SEGMENT_EXCHANGE
        self.exchange = table.get(segment, SEGMENT_EXCHANGE.get(segment, segment.upper()))
        self.label = label
        index = self.kind == "if"
        self.arg_map: _ArgMap = _INDEX_MAP if index else _SCRIP_MAP
        self.merges = _INDEX_MERGES if index else _SCRIP_MERGES
        self.args = self.rescaled()
        self.quote_fast = not index and self.kind != "dp"

    def rescaled(self) -> list[Any]:
        """The ``args`` a full rebuild from ``values`` gives (what the cache must equal)."""
        return scaled_args(self.values, self.divisor, self.label, self.exchange, self.arg_map)

    def price(self, position: int) -> float | None:
        values = self.values
        if position >= len(values):
            return None
        raw = values[position]
        return None if raw == NO_VALUE else raw / self.divisor

    def number(self, position: int) -> int | None:
        values = self.values
        if position >= len(values):
            return None
        raw = values[position]
        return None if raw == NO_VALUE else raw

    def millis(self, position: int) -> int | None:
        raw = self.number(position)
        return None if raw is None else raw * 1000


@dataclass(slots=True)
class HsmState:
    """What one connection has learnt: topic id → merged state, the labels of topics, the
    modes asked for, the ack rule. Pass the same object to every :func:`decode_frame` call of a
    connection; a new auth response (a new session) forgets every topic id.

    ``labels`` maps a topic to the Fyers symbol a tick reports as its token; ``modes`` maps that
    symbol to the mode the subscriber asked for. Without them (replay) the symbol comes from the
    snapshot's strings and the mode from what the capture holds (a depth topic → ``full``, lite
    records → ``ltp``, else ``quote``).
    """

    labels: dict[str, str] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    topics: dict[int, TopicState] = field(default_factory=dict)
    scrips: dict[str, TopicState] = field(default_factory=dict)  # symbol → sf state
    depths: dict[str, TopicState] = field(default_factory=dict)  # symbol → dp state
    ack_count: int = 0
    unacked: int = 0
    lite: bool = False

    def reset(self) -> None:
        self.topics.clear()
        self.scrips.clear()
        self.depths.clear()
        self.unacked = 0


@dataclass(slots=True)
class Decoded:
    """What one server frame meant: ticks, a control message, an acknowledgement to send.

    For a data message ``message`` is a :class:`DataMessage` with its number, skipped count and
    error but an empty ``records`` list: the records are merged straight from the bytes, never
    built as objects (:func:`decode_server_frame` gives them when they are wanted).
    """

    ticks: list[Tick] = field(default_factory=list)
    message: ServerMessage | None = None
    ack: int | None = None
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def decode_frame(data: bytes, ts_recv: int, state: HsmState) -> Decoded:
    """Decode one server frame against ``state`` (updated in place).

    A malformed header gives an empty result with the reason in ``errors``; unknown topic ids in
    updates are counted as skipped (their snapshot was never seen).
    """
    if len(data) >= 9 and data[2] == DATA:
        out = Decoded()
        number = _U32.unpack_from(data, 3)[0]
        out.message = _merge_data(data, _U16.unpack_from(data, 7)[0], number, state, ts_recv, out)
        if state.ack_count > 0:
            state.unacked += 1
            if state.unacked >= state.ack_count:
                state.unacked = 0
                out.ack = number
        return out
    try:
        message = decode_server_frame(data)
    except WireError as exc:
        return Decoded(errors=[str(exc)], skipped=1)
    out = Decoded(message=message)
    if isinstance(message, AuthResponse):
        state.reset()
        state.ack_count = message.ack_count
    return out


def _merge_data(
    data: bytes, count: int, number: int, state: HsmState, ts_recv: int, out: Decoded
) -> DataMessage:
    """Walk the records of a data message, merging each into ``state`` as it is read and
    appending one tick per record that changed something to ``out.ticks``.

    Same outcome as decoding the records (:func:`decode_server_frame`) and then applying them:
    a bad record stops the message, the records before it stay merged. The hot case — an
    update of a known topic — runs the merge compiled for its layout (:func:`_compile_merge`),
    which unpacks only the present values and rescales only the positions that changed; the
    ``Tick`` is then built positionally from the topic's cached arguments.
    """
    topics_get = state.topics.get
    modes_get = state.modes.get
    depths = state.depths
    lite = state.lite
    ticks = out.ticks
    append = ticks.append
    pos, size = 9, len(data)
    for index in range(count):
        try:
            kind = data[pos]
            topic_id = data[pos + 1] << 8 | data[pos + 2]
            if kind == UPDATE:
                n = data[pos + 3]
                start = pos + 4
                end = start + 4 * n
                if end > size:
                    raise IndexError
                pos = end
                topic = topics_get(topic_id)
                if topic is None:
                    out.skipped += 1
                    continue
                values = topic.values
                merges = topic.merges
                signature = data[start:end:4]
                merge = merges.get(signature)
                if merge is None:
                    if len(merges) >= _MERGE_CACHE_LIMIT:
                        merges.clear()
                    merge = merges[signature] = _compile_merge(signature, topic.arg_map)
                changed = (
                    None
                    if n > len(values)
                    else merge(values, topic.args, topic.divisor, data, start)
                )
                if changed is None:
                    changed = _merge_values(topic, _values_struct(n).unpack_from(data, start))
                if not changed:
                    continue
            elif kind == SNAPSHOT:
                topic_name, pos = _read_short(data, pos + 3)
                n = data[pos]
                snap_values = _values_struct(n).unpack_from(data, pos + 1)
                multiplier, precision = _TAIL.unpack_from(data, pos + 1 + 4 * n)
                exchange, pos = _read_short(data, pos + 6 + 4 * n)
                token, pos = _read_short(data, pos)
                symbol, pos = _read_short(data, pos)
                snapshot = Snapshot(topic_id, topic_name, snap_values, multiplier, precision,
                                    exchange, token, symbol)  # fmt: skip
                label = state.labels.get(topic_name) or symbol_from_snapshot(snapshot)
                topic = TopicState(snapshot, label)
                state.topics[topic_id] = topic
                if topic.kind == "dp":
                    depths[label] = topic
                elif topic.kind == "sf":
                    state.scrips[label] = topic
            elif kind == LITE:
                if pos + 7 > size:
                    raise IndexError
                ltp = _I32.unpack_from(data, pos + 3)[0]
                pos += 7
                topic = topics_get(topic_id)
                if topic is None:
                    out.skipped += 1
                    continue
                values = topic.values
                if values and values[0] == ltp:
                    continue
                if values:
                    values[0] = ltp
                else:
                    values.append(ltp)
                j = topic.arg_map[0][0]  # position 0 is the LTP of every topic kind
                topic.args[j] = None if ltp == NO_VALUE else ltp / topic.divisor
                _set_change(topic.args)
                state.lite = lite = True
            else:
                out.skipped += count - index
                out.errors.append(f"record {index} has unknown type {kind}")
                return DataMessage(number, [], count - index, out.errors[-1])
        except (IndexError, struct.error):
            out.skipped += count - index
            out.errors.append(f"record {index} of {count} is cut short")
            return DataMessage(number, [], count - index, out.errors[-1])
        # the tick for this record, from the topic's cached arguments
        label = topic.label
        if lite:
            mode = _LTP_MODE
        else:
            wanted = modes_get(label)
            mode = wanted if wanted is not None else _FULL_MODE if label in depths else _QUOTE_MODE
        if topic.quote_fast and mode != _LTP_MODE and mode != _FULL_MODE:
            args = topic.args
            if args[_A_LTP] is not None:
                args[_A_MODE] = mode
                args[_A_TS_RECV] = ts_recv
                append(Tick(*args))
        else:
            tick = _tick(topic, state, mode, ts_recv)
            if tick is not None:
                append(tick)
    if pos != size:
        error = f"{size - pos} bytes after the last record"
        out.errors.append(error)
        return DataMessage(number, [], 0, error)
    return DataMessage(number, [])


def _merge_values(topic: TopicState, raw_values: Sequence[int]) -> bool:
    """The general merge (§3.6) for updates the plans do not cover (longer than the held
    values, or a present value that starts like ``NO_VALUE``): present values overwrite, the
    list grows as needed, and the scaled arguments are rebuilt. True when something changed."""
    values = topic.values
    changed = False
    for i, raw in enumerate(raw_values):
        if raw != NO_VALUE:
            if i >= len(values):
                values.extend([NO_VALUE] * (i + 1 - len(values)))
            if values[i] != raw:
                values[i] = raw
                changed = True
    if changed:
        topic.args = topic.rescaled()
    return changed


def _tick(topic: TopicState, state: HsmState, mode: str, ts_recv: int) -> Tick | None:
    """The tick for a change of ``topic`` in ``mode`` (every case but the inlined quote tick
    of a scrip)."""
    kind = topic.kind
    if kind == "if":
        args = topic.args
        ltp = args[_A_LTP]
        if ltp is None:
            return None
        if mode == _LTP_MODE:
            return Tick(SOURCE, topic.label, topic.exchange, _LTP_MODE, ltp, None,
                        None, None, None, None, None, None, None, None, None, None, None,
                        None, None, None, None, None, None, None,
                        None, None, ts_recv)  # fmt: skip
        args[_A_MODE] = _QUOTE_MODE
        args[_A_TS_RECV] = ts_recv
        return Tick(*args)
    if kind == "dp":
        if mode != _FULL_MODE:
            return None
        scrip = state.scrips.get(topic.label)
        if scrip is None:
            return None  # depth alone has no price to report; the scrip snapshot follows
        return _scrip_tick(scrip, mode, ts_recv, topic)
    return _scrip_tick(topic, mode, ts_recv, state.depths.get(topic.label))


def _scrip_tick(
    topic: TopicState, mode: str, ts_recv: int, depth: TopicState | None
) -> Tick | None:
    args = topic.args
    ltp = args[_A_LTP]
    if ltp is None:
        return None
    if mode == _LTP_MODE:
        return Tick(SOURCE, topic.label, topic.exchange, mode, ltp, None,
                    None, None, None, None, None, None, None, None, None, None, None,
                    None, None, None, None, None, None, None,
                    args[_A_TS_EXCHANGE], args[_A_TS_LAST_TRADE], ts_recv)  # fmt: skip
    full = args.copy()
    full[_A_MODE] = mode
    full[_A_TS_RECV] = ts_recv
    if mode == _FULL_MODE:
        if depth is not None:
            full[_A_BIDS], full[_A_ASKS] = depth_levels(depth)
        else:
            bid, ask = topic.price(BID), topic.price(ASK)
            full[_A_BIDS] = (
                [DepthLevel(bid, topic.number(BID_SIZE) or 0)] if bid is not None else []
            )
            full[_A_ASKS] = (
                [DepthLevel(ask, topic.number(ASK_SIZE) or 0)] if ask is not None else []
            )
    return Tick(*full)


def depth_levels(depth: TopicState) -> tuple[list[DepthLevel], list[DepthLevel]]:
    """Five bid and ask levels from a ``dp`` topic; levels without a price are left out."""
    bids: list[DepthLevel] = []
    asks: list[DepthLevel] = []
    for i in range(DEPTH_LEVELS):
        bid = depth.price(i)
        if bid is not None:
            bids.append(DepthLevel(bid, depth.number(10 + i) or 0, depth.number(20 + i) or 0))
        ask = depth.price(5 + i)
        if ask is not None:
            asks.append(DepthLevel(ask, depth.number(15 + i) or 0, depth.number(25 + i) or 0))
    return bids, asks


# --------------------------------------------------------------------------- ticks → values


def raw_price(price: float | None, divisor: float) -> int:
    return NO_VALUE if price is None else round(price * divisor)


def _raw_int(value: int | None) -> int:
    return NO_VALUE if value is None else value


def _seconds(ms: int | None) -> int:
    return NO_VALUE if ms is None else ms // 1000


def scrip_values(tick: Tick, divisor: float = 100.0) -> list[int]:
    """A tick as the 21 positional ``sf`` values (the emulator's encoder)."""
    bid = tick.bids[0] if tick.bids else None
    ask = tick.asks[0] if tick.asks else None
    p = raw_price
    return [
        p(tick.ltp, divisor), _raw_int(tick.volume), _seconds(tick.ts_last_trade),
        _seconds(tick.ts_exchange), _raw_int(bid.qty if bid else None),
        _raw_int(ask.qty if ask else None), p(bid.price if bid else None, divisor),
        p(ask.price if ask else None, divisor), _raw_int(tick.ltq),
        _raw_int(tick.total_buy_qty), _raw_int(tick.total_sell_qty), p(tick.atp, divisor),
        _raw_int(tick.oi), p(tick.low, divisor), p(tick.high, divisor),
        p(tick.high_52w, divisor), p(tick.low_52w, divisor), p(tick.lower_circuit, divisor),
        p(tick.upper_circuit, divisor), p(tick.open, divisor), p(tick.close, divisor),
    ]  # fmt: skip


def index_values(tick: Tick, divisor: float = 100.0) -> list[int]:
    p = raw_price
    return [p(tick.ltp, divisor), p(tick.close, divisor), _seconds(tick.ts_exchange),
            p(tick.high, divisor), p(tick.low, divisor), p(tick.open, divisor)]  # fmt: skip


def depth_values(tick: Tick, divisor: float = 100.0) -> list[int]:
    bids = list(tick.bids or ())[:DEPTH_LEVELS]
    asks = list(tick.asks or ())[:DEPTH_LEVELS]
    bids += [None] * (DEPTH_LEVELS - len(bids))  # type: ignore[list-item]
    asks += [None] * (DEPTH_LEVELS - len(asks))  # type: ignore[list-item]
    values = [raw_price(lv.price if lv else None, divisor) for lv in bids]
    values += [raw_price(lv.price if lv else None, divisor) for lv in asks]
    values += [_raw_int(lv.qty if lv else None) for lv in bids]
    values += [_raw_int(lv.qty if lv else None) for lv in asks]
    values += [_raw_int(lv.orders if lv else None) for lv in bids]
    values += [_raw_int(lv.orders if lv else None) for lv in asks]
    return values


def update_values(previous: Sequence[int], current: Sequence[int]) -> tuple[int, ...] | None:
    """The update record's values: ``current`` where it differs from ``previous``, else the
    "unchanged" marker; ``None`` when nothing changed (no record is sent)."""
    out = tuple(c if c != p else NO_VALUE for p, c in zip(previous, current, strict=True))
    return None if all(v == NO_VALUE for v in out) else out


def merge(previous: list[int], values: Sequence[int]) -> list[int]:
    """The receiver's merge rule (§3.6), as a pure function: present values overwrite."""
    merged = list(previous)
    for i, raw in enumerate(values):
        if raw != NO_VALUE:
            merged[i] = raw
    return merged
