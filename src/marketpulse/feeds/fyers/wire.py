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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from marketpulse.model import DepthLevel, Mode, Tick, price_change

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


class TopicState:
    """One topic's merged raw values (``NO_VALUE`` where the server gave none)."""

    __slots__ = ("divisor", "exchange", "kind", "label", "topic", "values")

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
    """What one server frame meant: ticks, a control message, an acknowledgement to send."""

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
    try:
        message = decode_server_frame(data)
    except WireError as exc:
        return Decoded(errors=[str(exc)], skipped=1)
    out = Decoded(message=message)
    if isinstance(message, DataMessage):
        if message.error is not None:
            out.errors.append(message.error)
            out.skipped += message.skipped
        out.ticks = _apply(message.records, state, ts_recv, out)
        if state.ack_count > 0:
            state.unacked += 1
            if state.unacked >= state.ack_count:
                state.unacked = 0
                out.ack = message.number
    elif isinstance(message, AuthResponse):
        state.reset()
        state.ack_count = message.ack_count
    return out


def _mode_of(state: HsmState, symbol: str) -> str:
    if state.lite:
        return Mode.LTP.value
    mode = state.modes.get(symbol)
    if mode is not None:
        return mode
    return Mode.FULL.value if symbol in state.depths else Mode.QUOTE.value


def _apply(records: Iterable[Record], state: HsmState, ts_recv: int, out: Decoded) -> list[Tick]:
    """Merge ``records`` into ``state``; one tick per record that changed something."""
    topics = state.topics
    ticks: list[Tick] = []
    for record in records:
        if isinstance(record, Update):
            topic = topics.get(record.topic_id)
            if topic is None:
                out.skipped += 1
                continue
            values = topic.values
            changed = False
            for i, raw in enumerate(record.values):
                if raw != NO_VALUE:
                    if i >= len(values):
                        values.extend([NO_VALUE] * (i + 1 - len(values)))
                    if values[i] != raw:
                        values[i] = raw
                        changed = True
            if not changed:
                continue
        elif isinstance(record, Lite):
            topic = topics.get(record.topic_id)
            if topic is None:
                out.skipped += 1
                continue
            if topic.values and topic.values[0] == record.ltp:
                continue
            if topic.values:
                topic.values[0] = record.ltp
            else:
                topic.values.append(record.ltp)
            state.lite = True
        else:
            label = state.labels.get(record.topic) or symbol_from_snapshot(record)
            topic = TopicState(record, label)
            topics[record.topic_id] = topic
            if topic.kind == "dp":
                state.depths[label] = topic
            elif topic.kind == "sf":
                state.scrips[label] = topic
        tick = _tick(topic, state, ts_recv)
        if tick is not None:
            ticks.append(tick)
    return ticks


def _tick(topic: TopicState, state: HsmState, ts_recv: int) -> Tick | None:
    kind = topic.kind
    symbol = topic.label
    if kind == "if":
        ltp = topic.price(I_LTP)
        if ltp is None:
            return None
        if _mode_of(state, symbol) == Mode.LTP.value:
            return Tick(SOURCE, symbol, topic.exchange, Mode.LTP.value, ltp, ts_recv=ts_recv)
        close = topic.price(I_CLOSE)
        change, change_pct = price_change(ltp, close)
        return Tick(SOURCE, symbol, topic.exchange, Mode.QUOTE.value, ltp,
                    open=topic.price(I_OPEN), high=topic.price(I_HIGH), low=topic.price(I_LOW),
                    close=close, change=change, change_pct=change_pct,
                    ts_exchange=topic.millis(I_FEED_TIME), ts_recv=ts_recv)  # fmt: skip
    mode = _mode_of(state, symbol)
    if kind == "dp":
        if mode != Mode.FULL.value:
            return None
        scrip = state.scrips.get(symbol)
        if scrip is None:
            return None  # depth alone has no price to report; the scrip snapshot follows
        return _scrip_tick(scrip, mode, ts_recv, topic)
    return _scrip_tick(topic, mode, ts_recv, state.depths.get(symbol))


def _scrip_tick(
    topic: TopicState, mode: str, ts_recv: int, depth: TopicState | None
) -> Tick | None:
    ltp = topic.price(LTP)
    if ltp is None:
        return None
    if mode == Mode.LTP.value:
        return Tick(SOURCE, topic.label, topic.exchange, mode, ltp,
                    ts_last_trade=topic.millis(LTT), ts_exchange=topic.millis(FEED_TIME),
                    ts_recv=ts_recv)  # fmt: skip
    close = topic.price(CLOSE)
    change, change_pct = price_change(ltp, close)
    bids = asks = None
    if mode == Mode.FULL.value:
        if depth is not None:
            bids, asks = depth_levels(depth)
        else:
            bid, ask = topic.price(BID), topic.price(ASK)
            bids = [DepthLevel(bid, topic.number(BID_SIZE) or 0)] if bid is not None else []
            asks = [DepthLevel(ask, topic.number(ASK_SIZE) or 0)] if ask is not None else []
    return Tick(
        SOURCE, topic.label, topic.exchange, mode, ltp,
        ltq=topic.number(LTQ), atp=topic.price(ATP), volume=topic.number(VOLUME),
        total_buy_qty=topic.number(TBQ), total_sell_qty=topic.number(TSQ),
        open=topic.price(OPEN), high=topic.price(HIGH), low=topic.price(LOW), close=close,
        change=change, change_pct=change_pct, oi=topic.number(OI),
        upper_circuit=topic.price(UPPER_CKT), lower_circuit=topic.price(LOWER_CKT),
        high_52w=topic.price(YHIGH), low_52w=topic.price(YLOW),
        ts_exchange=topic.millis(FEED_TIME), ts_last_trade=topic.millis(LTT), ts_recv=ts_recv,
        bids=bids, asks=asks,
    )  # fmt: skip


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
