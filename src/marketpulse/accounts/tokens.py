"""Pure token functions: JWT access tokens, opaque refresh tokens and API keys.

Access tokens are HS256 JWTs (claims ``sub``, ``role``, ``name``, ``exp``, ``iat``, ``jti``,
``type``) that any API replica verifies without a database round trip. Refresh tokens and API
keys are random strings the service stores only as SHA-256 digests: they carry 256 bits of
entropy, so a fast hash is enough and a leaked table gives nothing usable.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt

ALGORITHM = "HS256"
ISSUER = "marketpulse"
API_KEY_PREFIX = "mpk_"
API_KEY_VISIBLE_CHARS = 12  # "mpk_" + 8 characters, shown when keys are listed


class InvalidTokenError(ValueError):
    """A token that is malformed, badly signed, expired or of the wrong type."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says about its holder."""

    user_id: int
    username: str
    role: Literal["admin", "user"]
    jti: str
    expires_at: int


def encode_access_token(
    user_id: int, username: str, role: str, secret: str, *, now: int, ttl_seconds: int
) -> tuple[str, AccessClaims]:
    """A signed access token valid for ``ttl_seconds`` from ``now`` (epoch seconds)."""
    jti = uuid.uuid4().hex
    claims = {
        "sub": str(user_id), "name": username, "role": role, "iat": now,
        "exp": now + ttl_seconds, "jti": jti, "type": "access", "iss": ISSUER,
    }  # fmt: skip
    token = jwt.encode(claims, secret, algorithm=ALGORITHM)
    role_: Literal["admin", "user"] = "admin" if role == "admin" else "user"
    return token, AccessClaims(user_id, username, role_, jti, now + ttl_seconds)


def decode_access_token(token: str, secret: str) -> AccessClaims:
    """The claims of a valid access token; :class:`InvalidTokenError` for anything else."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["sub", "role", "exp", "iat", "jti", "type"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidTokenError("access token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidTokenError("invalid access token") from exc
    if claims.get("type") != "access" or claims.get("role") not in ("admin", "user"):
        raise InvalidTokenError("not an access token")
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise InvalidTokenError("invalid access token") from exc
    return AccessClaims(
        user_id, str(claims.get("name", "")), claims["role"], str(claims["jti"]),
        int(claims["exp"]),
    )  # fmt: skip


def looks_like_jwt(token: str) -> bool:
    """JWTs have three dot-separated parts; our API keys and refresh tokens have none."""
    return token.count(".") == 2


def digest(secret: str) -> str:
    """The stored form of a refresh token or API key."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str]:
    """``(key, visible prefix)``: the key is shown once; the prefix identifies it in lists."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:API_KEY_VISIBLE_CHARS]


def is_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)
