"""Who is calling: the principal behind a request and the role checks routes declare.

Routes never parse credentials themselves; they declare ``CurrentUser`` (any signed-in user
or API key) or ``AdminUser`` (role ``admin``). Credentials are, in order of precedence:
``X-API-Key: <key>``, then ``Authorization: Bearer <JWT access token or API key>``. With
``AUTH_ENABLED=false`` (development, tests and the demo only; refused in production) every
caller is an anonymous admin.

A missing or bad credential is a 401 with ``WWW-Authenticate: Bearer``; a valid one without
the needed role is a 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from fastapi import Depends, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from marketpulse.accounts.api_keys import resolve_api_key
from marketpulse.accounts.sessions import access_token_revoked
from marketpulse.accounts.tokens import (
    AccessClaims,
    InvalidTokenError,
    decode_access_token,
    is_api_key,
)
from marketpulse.config import Settings

Role = Literal["admin", "user"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. ``user_id`` is ``None`` only for the anonymous admin."""

    user_id: int | None
    username: str
    role: Role
    via: Literal["jwt", "api_key", "anonymous"]


ANONYMOUS_ADMIN = Principal(None, "anonymous", "admin", "anonymous")

# Documented in OpenAPI so /docs has an "Authorize" button (password flow or an API key).
bearer_scheme = OAuth2PasswordBearer(
    tokenUrl="/auth/login", auto_error=False, description="access token from /auth/login"
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="API key from POST /auth/api-keys"
)


def unauthorized(detail: str) -> HTTPException:
    """A 401 that tells clients to present a bearer token."""
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def principal_for_token(conn: HTTPConnection, token: str) -> Principal:
    """The principal a JWT access token or an API key stands for; 401 when it is not valid.

    Used by the HTTP dependencies below and by the WebSocket endpoint. A verified JWT's claims
    are left on ``conn.state.access_claims`` (``/auth/logout`` revokes its ``jti``)."""
    settings = cast(Settings, conn.app.state.settings)
    if is_api_key(token):
        maker = cast(async_sessionmaker[AsyncSession], conn.app.state.sessionmaker)
        async with maker() as session:
            user = await resolve_api_key(session, token)
        if user is None:
            raise unauthorized("invalid or revoked API key")
        return Principal(user.id, user.username, _role(user.role), "api_key")
    try:
        claims = decode_access_token(token, settings.jwt_secret.get_secret_value())
    except InvalidTokenError as exc:
        raise unauthorized(str(exc)) from exc
    if await access_token_revoked(conn.app.state.redis, settings, claims.jti):
        raise unauthorized("access token revoked")
    conn.state.access_claims = claims
    return Principal(claims.user_id, claims.username, claims.role, "jwt")


def _role(value: str) -> Role:
    return "admin" if value == "admin" else "user"


def access_claims(conn: HTTPConnection) -> AccessClaims | None:
    """The claims of the JWT this request was authenticated with (``None`` for API keys)."""
    return cast(AccessClaims | None, getattr(conn.state, "access_claims", None))


async def require_user(
    conn: HTTPConnection,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    """Any authenticated caller (401 otherwise)."""
    settings: Any = conn.app.state.settings
    if not settings.auth_enabled:
        return ANONYMOUS_ADMIN
    token = api_key or bearer
    if not token:
        raise unauthorized("not authenticated: send Authorization: Bearer <token> or X-API-Key")
    return await principal_for_token(conn, token)


async def require_admin(principal: Annotated[Principal, Depends(require_user)]) -> Principal:
    """An authenticated caller with role ``admin`` (403 for role ``user``)."""
    if principal.role != "admin":
        raise HTTPException(403, "this needs the admin role")
    return principal


CurrentUser = Annotated[Principal, Depends(require_user)]
AdminUser = Annotated[Principal, Depends(require_admin)]


CLOSE_UNAUTHENTICATED = 4401
WS_AUTH_TIMEOUT_SECONDS = 10.0


async def authenticate_websocket(websocket: WebSocket) -> Principal | None:
    """Authenticate an accepted WebSocket: ``/ws?token=<JWT or API key>``, or else a first
    message ``{"action": "auth", "token": ...}`` within 10 s. On failure the socket is closed
    with code 4401 and the reason, and ``None`` is returned."""
    settings: Any = websocket.app.state.settings
    if not settings.auth_enabled:
        return ANONYMOUS_ADMIN
    token = websocket.query_params.get("token")
    first_message = token is None
    if first_message:
        token = await _first_message_token(websocket)
    reason = "authentication required: connect with ?token=<token> or send "
    reason += '{"action": "auth", "token": "..."} first'
    principal = None
    if token:
        try:
            principal = await principal_for_token(websocket, token)
        except HTTPException as exc:
            reason = str(exc.detail)
    if principal is None:
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_UNAUTHENTICATED, reason[:120])
        return None
    if first_message:
        await websocket.send_text(
            json.dumps(
                {"message_type": "info", "message": f"authenticated as {principal.username}"}
            )
        )
    return principal


async def _first_message_token(websocket: WebSocket) -> str | None:
    try:
        async with asyncio.timeout(WS_AUTH_TIMEOUT_SECONDS):
            raw = await websocket.receive_text()
        message = json.loads(raw)
    except (TimeoutError, ValueError, KeyError, RuntimeError, WebSocketDisconnect):
        return None
    if isinstance(message, dict) and message.get("action") == "auth":
        token = message.get("token")
        return token if isinstance(token, str) and token else None
    return None
