"""Password hashing: Argon2id through pwdlib, with rehash-on-login when parameters change."""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_HASHER = PasswordHash((Argon2Hasher(),))

# Verified against when the username is unknown, so a wrong username costs as much time as a
# wrong password and response times do not reveal which accounts exist.
_DUMMY_HASH = _HASHER.hash("marketpulse-timing-equaliser")

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    """The Argon2id hash stored in ``users.password_hash``."""
    return _HASHER.hash(password)


def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Whether ``password`` matches, and a new hash to store when the parameters changed.

    ``password_hash=None`` (unknown user, or an OIDC-only account) still spends one Argon2
    verification and answers ``False``."""
    if password_hash is None:
        _HASHER.verify(password, _DUMMY_HASH)
        return False, None
    return _HASHER.verify_and_update(password, password_hash)
