"""Feed outages on their way from ingest to the store role (``{mp}:gaps`` stream).

Ingest knows when a connection was down and which instruments it carried; the store role knows
the database and the providers' history. One stream entry (field ``o``) per outage connects them,
read by a consumer group so that each outage is handled once however many store workers run.
"""

from __future__ import annotations

import msgspec

OUTAGE_FIELD = b"o"


class OutageReport(msgspec.Struct, frozen=True):
    """One connection's outage: canonical symbols, epoch-second bounds and why it dropped."""

    feed: str
    symbols: list[str]
    start: float
    end: float
    reason: str
