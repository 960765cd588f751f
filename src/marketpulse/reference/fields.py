"""Request-field rules shared by the reference-data routes.

PostgreSQL ``text`` cannot hold NUL characters, so free text is refused at validation (422)
instead of failing in the database (500); PATCH bodies may not null a required column.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import time
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

NO_NUL = r"^[^\x00]*$"

PlainText = Annotated[str, Field(pattern=NO_NUL)]
"""Any text PostgreSQL can store (no NUL characters)."""


def _wall_clock(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError(
            "session times are the exchange's local wall clock (its timezone is the exchange's); "
            "give them without a UTC offset, e.g. 09:15:00"
        )
    return value


_WALL_CLOCK_SCHEMA: Final = WithJsonSchema(
    {"type": "string", "format": "partial-time", "pattern": r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"}
)
# OpenAPI's ``format: time`` is RFC 3339's full-time, which needs an offset; a wall-clock time
# is RFC 3339's partial-time ("09:15:00").

WallTime = Annotated[time, AfterValidator(_wall_clock), _WALL_CLOCK_SCHEMA]
"""A session time in the exchange's own timezone. An offset is refused: PostgreSQL's ``time``
would drop it, and comparing aware with naive times (open < close) would fail."""

WallTimeOut = Annotated[time, _WALL_CLOCK_SCHEMA]
"""A stored session time as responses give it: the exchange's wall clock, no offset."""


def patch_values(body: BaseModel, nullable: Collection[str] = ()) -> dict[str, Any]:
    """The fields the client sent; ``ValueError`` if one that may not be empty was ``null``
    (call it from a model validator, so the error is a 422 like any other)."""
    values = body.model_dump(exclude_unset=True)
    nulls = sorted(k for k, v in values.items() if v is None and k not in nullable)
    if nulls:
        raise ValueError(f"{', '.join(nulls)} cannot be null")
    return values
