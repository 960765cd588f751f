"""Fyers symbols ↔ HSM topics (spec §1.3), pure.

The data socket never sees ``NSE:SBIN-EQ``: it wants ``sf|nse_cm|3045``. The symbol-token REST
lookup answers each symbol's *fyToken*, whose first four digits name the segment and whose tail
from position 10 is the exchange token. Indices are addressed by name (``if|nse_cm|Nifty 50``):
the name comes from Fyers' ``index_hsm_mapping.json`` when it could be fetched, else from the
headline table below (a subset of the official SDK's ``map.json``), else from the text between
``:`` and ``-`` of the symbol, the same fallback order as the SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from marketpulse.model import Mode

SEGMENT_OF_PREFIX: Final[dict[str, str]] = {
    "1010": "nse_cm", "1011": "nse_fo", "1012": "cde_fo", "1020": "nse_com",
    "1120": "mcx_fo", "1210": "bse_cm", "1211": "bse_fo", "1212": "bcs_fo",
}  # fmt: skip
PREFIX_OF_SEGMENT: Final = {segment: prefix for prefix, segment in SEGMENT_OF_PREFIX.items()}

INDEX_NAMES: Final[dict[str, str]] = {
    "NSE:NIFTY50-INDEX": "Nifty 50",
    "NSE:NIFTYBANK-INDEX": "Nifty Bank",
    "NSE:FINNIFTY-INDEX": "Nifty Fin Service",
    "NSE:MIDCPNIFTY-INDEX": "NIFTY MID SELECT",
    "NSE:INDIAVIX-INDEX": "India VIX",
    "NSE:NIFTYNXT50-INDEX": "Nifty Next 50",
    "NSE:NIFTYIT-INDEX": "Nifty IT",
    "NSE:NIFTY500-INDEX": "Nifty 500",
    "BSE:SENSEX-INDEX": "SENSEX",
    "BSE:BANKEX-INDEX": "BANKEX",
}
"""Headline indices → HSM index name, used when the published mapping is unavailable."""


class TopicError(ValueError):
    """A fyToken or symbol that cannot become a topic; the message says why."""


def is_index(symbol: str) -> bool:
    return symbol.endswith("-INDEX")


def segment_of(fytoken: str) -> str:
    segment = SEGMENT_OF_PREFIX.get(fytoken[:4])
    if segment is None or len(fytoken) <= 10:
        raise TopicError(f"fyToken {fytoken!r} has an unknown segment prefix {fytoken[:4]!r}")
    return segment


def index_name(symbol: str, mapping: dict[str, str] | None = None) -> str:
    if mapping and symbol in mapping:
        return mapping[symbol]
    if symbol in INDEX_NAMES:
        return INDEX_NAMES[symbol]
    return symbol.partition(":")[2].rpartition("-")[0] or symbol


def scrip_topic(symbol: str, fytoken: str, mapping: dict[str, str] | None = None) -> str:
    """``sf|<segment>|<token>`` (or ``if|<segment>|<index name>``) for SymbolUpdate."""
    segment = segment_of(fytoken)
    if is_index(symbol):
        return f"if|{segment}|{index_name(symbol, mapping)}"
    return f"sf|{segment}|{fytoken[10:]}"


def depth_topic(symbol: str, fytoken: str) -> str | None:
    """``dp|<segment>|<token>``; ``None`` for an index (indices have no market depth)."""
    if is_index(symbol):
        return None
    return f"dp|{segment_of(fytoken)}|{fytoken[10:]}"


@dataclass(frozen=True, slots=True)
class SymbolTopics:
    """The topics one subscription needs: the scrip/index topic, plus depth in ``full``."""

    symbol: str
    scrip: str
    depth: str | None

    def for_mode(self, mode: str) -> list[str]:
        """Depth first: the server snapshots topics in request order, so the book is known
        when the scrip snapshot makes the first ``full`` tick (and a replay sees it too)."""
        if mode == Mode.FULL.value and self.depth is not None:
            return [self.depth, self.scrip]
        return [self.scrip]


def topics_for(symbol: str, fytoken: str, mapping: dict[str, str] | None = None) -> SymbolTopics:
    return SymbolTopics(symbol, scrip_topic(symbol, fytoken, mapping), depth_topic(symbol, fytoken))
