"""What a reference-data operation can refuse, each with the HTTP status it maps to.

The repository functions raise these with a message that names the offending row, so the
REST layer can pass the message through unchanged (:func:`http_errors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fastapi import HTTPException

from marketpulse.accounts.secrets import SecretDecryptionError, SecretsNotConfiguredError


class ReferenceDataError(Exception):
    """Base class; ``status_code`` is the HTTP status the API answers with."""

    status_code = 400


class NotFoundError(ReferenceDataError, LookupError):
    """The exchange, instrument, sector, provider or mapping does not exist."""

    status_code = 404


class ConflictError(ReferenceDataError):
    """A uniqueness rule or a reference from another row forbids the change."""

    status_code = 409


class InvalidError(ReferenceDataError, ValueError):
    """Values that are well-formed but inconsistent (e.g. a session that closes before it
    opens); schema-level validation is pydantic's job and never reaches here."""

    status_code = 422


@contextlib.contextmanager
def http_errors() -> Iterator[None]:
    """Turn reference-data and secret-store errors into ``HTTPException`` with their message."""
    try:
        yield
    except ReferenceDataError as exc:
        raise HTTPException(exc.status_code, str(exc)) from exc
    except SecretsNotConfiguredError as exc:
        raise HTTPException(503, str(exc)) from exc
    except SecretDecryptionError as exc:
        raise HTTPException(409, str(exc)) from exc
