"""Which Angel One segment each subscribed token lives in, and how its ticks are labelled.

An Angel token is only unique *within* an exchange segment: every subscribe message groups
tokens by ``exchangeType`` and the server needs the right one, or it streams nothing (or, with a
clash, another instrument). The supervisor only knows opaque subscription keys, so the adapter
keeps a :class:`Directory` built from the instrument master (``TrackedSymbol.exchange``):

- a plain key ``"2885"`` is looked up in the directory (filled by :meth:`Directory.track`);
- a qualified key ``"NFO|43650"`` (or ``"2|43650"``, ``"nse_fo|43650"``) says it explicitly and
  works without the instrument master, e.g. ``marketpulse record --tokens NFO|43650``;
- an unknown plain key falls back to NSE cash (exchangeType 1), the segment of almost every
  plain token a user types, with a warning naming the qualified form.

The directory also relabels decoded ticks: indices travel as ordinary cash tokens (spec §4.8), so
the wire decoder says ``NSE``; the instrument master knows it is ``NSE_INDEX`` and its symbol.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from marketpulse.feeds.angelone.wire import EXCHANGE_BY_TYPE, EXCHANGE_TYPES, ExchangeType
from marketpulse.model import Tick
from marketpulse.subscriptions import TrackedSymbol

log = logging.getLogger(__name__)

SEPARATOR: Final = "|"
DEFAULT_EXCHANGE_TYPE: Final = int(ExchangeType.NSE_CM)

_SDK_NAMES: Final[dict[str, int]] = {member.name: int(member) for member in ExchangeType}


class SegmentError(ValueError):
    """A qualified subscription key whose segment is not an Angel One exchange type."""


@dataclass(frozen=True, slots=True)
class Listing:
    """One subscribable instrument: its segment, its token and how its ticks are labelled."""

    exchange_type: int
    token: str
    exchange: str  # canonical exchange of its ticks (NSE_INDEX for an NSE index)
    symbol: str | None = None


def parse_segment(text: str) -> tuple[int, str | None]:
    """``exchangeType`` and canonical exchange of a key's prefix.

    Accepts the exchangeType number (``2``), a canonical exchange (``NFO``, ``NSE_INDEX``) or
    the SDK's segment name (``nse_fo``). The exchange is None for numbers and SDK names: they
    name a segment, not a label.
    """
    raw = text.strip()
    if raw.isdigit() and int(raw) in EXCHANGE_BY_TYPE:
        return int(raw), None
    upper = raw.upper()
    if upper in EXCHANGE_TYPES:
        return EXCHANGE_TYPES[upper], upper
    if upper in _SDK_NAMES:
        return _SDK_NAMES[upper], None
    known = ", ".join([*EXCHANGE_TYPES, *(str(c) for c in EXCHANGE_BY_TYPE)])
    raise SegmentError(f"unknown Angel One segment {text!r}; use one of {known}")


def qualified(exchange: str, token: str) -> str:
    """The explicit key of ``token`` in ``exchange`` (e.g. ``NFO|43650``)."""
    return f"{exchange}{SEPARATOR}{token}"


class Directory:
    """Subscription key → :class:`Listing`, and (wire exchange, token) → tick label."""

    def __init__(self) -> None:
        self._listings: dict[str, Listing] = {}
        self._labels: dict[tuple[str, str], tuple[str, str | None]] = {}
        self._defaulted: set[str] = set()

    def track(self, tracked: Iterable[TrackedSymbol]) -> None:
        """Learn the segment and label of instrument-master entries (those with an exchange)."""
        for item in tracked:
            code = EXCHANGE_TYPES.get(item.exchange)
            if code is None:
                continue
            token = item.token.rpartition(SEPARATOR)[2]
            listing = Listing(code, token, item.exchange, item.symbol or None)
            self._listings[item.token] = listing
            self._label(listing)

    def listing(self, key: str) -> Listing:
        """What ``key`` subscribes to; see the module docstring for the three forms."""
        known = self._listings.get(key)
        if known is not None:
            return known
        if SEPARATOR in key:
            segment, _, token = key.rpartition(SEPARATOR)
            code, exchange = parse_segment(segment)
            listing = Listing(code, token.strip(), exchange or EXCHANGE_BY_TYPE[code])
            self._listings[key] = listing
            self._label(listing)
            return listing
        if key not in self._defaulted:
            self._defaulted.add(key)
            if len(self._defaulted) <= 5:
                log.warning(
                    "angelone: token %s is not in the instrument master's subscriptions; "
                    "subscribing it as NSE cash (write e.g. NFO|%s for another segment)",
                    key,
                    key,
                )
        return Listing(DEFAULT_EXCHANGE_TYPE, key, EXCHANGE_BY_TYPE[DEFAULT_EXCHANGE_TYPE])

    def group(self, keys: Sequence[str]) -> dict[int, list[str]]:
        """Tokens of ``keys`` grouped by exchangeType, in first-seen order (a ``tokenList``).

        A key naming an unknown segment is left out with an error logged once: raising here
        would fail every reconnect's resubscription, and the other tokens must still stream.
        """
        groups: dict[int, list[str]] = {}
        for key in keys:
            try:
                listing = self.listing(key)
            except SegmentError as exc:
                if key not in self._defaulted:
                    self._defaulted.add(key)
                    log.error("angelone: not subscribing %r: %s", key, exc)
                continue
            groups.setdefault(listing.exchange_type, []).append(listing.token)
        return groups

    def label(self, ticks: list[Tick]) -> list[Tick]:
        """Give ticks the canonical exchange and symbol the instrument master knows (in place)."""
        labels = self._labels
        if labels:
            for tick in ticks:
                found = labels.get((tick.exchange, tick.token))
                if found is not None:
                    tick.exchange = found[0]
                    if tick.symbol is None:
                        tick.symbol = found[1]
        return ticks

    def _label(self, listing: Listing) -> None:
        wire = EXCHANGE_BY_TYPE[listing.exchange_type]
        if listing.exchange != wire or listing.symbol is not None:
            self._labels[(wire, listing.token)] = (listing.exchange, listing.symbol)


def keys_for(tracked: Sequence[TrackedSymbol]) -> list[TrackedSymbol]:
    """``tracked`` with qualified keys for tokens that appear in more than one segment.

    Plain tokens are the norm (they are what the instrument master and ``/symbols`` show); only
    a token listed in two segments needs the ``EXCHANGE|TOKEN`` form to stay two subscriptions.
    """
    segments: dict[str, set[int]] = {}
    for item in tracked:
        code = EXCHANGE_TYPES.get(item.exchange)
        if code is not None:
            segments.setdefault(item.token, set()).add(code)
    clashing = {token for token, codes in segments.items() if len(codes) > 1}
    if not clashing:
        return list(tracked)
    return [
        msgspec.structs.replace(item, token=qualified(item.exchange, item.token))
        if item.token in clashing
        else item
        for item in tracked
    ]
