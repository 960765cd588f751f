"""Request-field rules shared by the reference-data routes.

PostgreSQL ``text`` cannot hold NUL characters, so free text is refused at validation (422)
instead of failing in the database (500); PATCH bodies may not null a required column.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import time
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

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


WallTime = Annotated[time, AfterValidator(_wall_clock)]
"""A session time in the exchange's own timezone. An offset is refused: PostgreSQL's ``time``
would drop it, and comparing aware with naive times (open < close) would fail."""


def patch_values(body: BaseModel, nullable: Collection[str] = ()) -> dict[str, Any]:
    """The fields the client sent; ``ValueError`` if one that may not be empty was ``null``
    (call it from a model validator, so the error is a 422 like any other)."""
    values = body.model_dump(exclude_unset=True)
    nulls = sorted(k for k, v in values.items() if v is None and k not in nullable)
    if nulls:
        raise ValueError(f"{', '.join(nulls)} cannot be null")
    return values
