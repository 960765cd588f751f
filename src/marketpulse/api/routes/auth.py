"""Accounts over REST: login, token refresh and logout, users, API keys and OIDC sign-in.

``POST /auth/login`` takes the OAuth2 password form (what the /docs "Authorize" dialog sends)
or JSON ``{"username", "password"}``. Logins are limited per client address
(``LOGIN_RATE_LIMIT`` per ``LOGIN_RATE_WINDOW_SECONDS``, then 429 with ``Retry-After``) and per
account (``LOGIN_MAX_ATTEMPTS`` wrong passwords lock it for ``LOGIN_LOCKOUT_SECONDS``).
Nothing here logs a password, token or key.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field, ValidationError

from marketpulse.accounts import api_keys, sessions, users
from marketpulse.accounts.oidc import OidcClient, OidcError, OidcUnavailableError
from marketpulse.accounts.ratelimit import hit
from marketpulse.accounts.users import USERNAME_PATTERN
from marketpulse.api.deps import RedisDep, SessionDep, SettingsDep
from marketpulse.api.security import (
    AdminUser,
    CurrentUser,
    Principal,
    access_claims,
    unauthorized,
)
from marketpulse.config import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64, examples=["alice"])
    password: str = Field(min_length=1, max_length=1024, examples=["correct horse battery"])


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_token: str
    refresh_expires_in: int
    role: Literal["admin", "user"]


class RegisterRequest(BaseModel):
    username: str = Field(pattern=USERNAME_PATTERN, examples=["alice"])
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["admin", "user"] = "user"
    email: str | None = Field(None, max_length=320)


class UserView(BaseModel):
    id: int | None
    username: str
    role: Literal["admin", "user"]
    via: Literal["jwt", "api_key", "anonymous"] | None = None
    email: str | None = None
    active: bool = True
    created_at: datetime | None = None


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512, examples=["rt_5d1c…"])


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(
        None,
        max_length=512,
        description="also revoke this refresh token (and its rotations)",
        examples=["rt_5d1c…"],
    )


class ApiKeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["price-dashboard"])


class ApiKeyView(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the first characters of the key, to recognise it")
    created_at: datetime
    last_used_at: datetime | None = None


class NewApiKey(ApiKeyView):
    key: str = Field(description="the key itself; shown only in this response")


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _rate_limit(request: Request, redis: Any, settings: Settings, what: str) -> None:
    address = _client_address(request)
    key = f"{settings.redis_key_prefix}:auth:rate:{what}:{address}"
    retry = await hit(redis, key, settings.login_rate_limit, settings.login_rate_window_seconds)
    if retry is not None:
        log.warning("login rate limit reached for client %s", address)
        raise HTTPException(
            429, f"too many login attempts from this address; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )  # fmt: skip


async def _read_credentials(request: Request) -> Credentials:
    """Credentials from a JSON body or an OAuth2 password form; 422 when neither is valid."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            return Credentials.model_validate_json(await request.body())
        if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            return Credentials.model_validate(
                {k: form.get(k) for k in ("username", "password") if form.get(k) is not None}
            )
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise HTTPException(422, errors) from exc
    raise HTTPException(
        422, "send username and password as JSON or as an application/x-www-form-urlencoded form"
    )


_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": Credentials.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            },
        },
    }
}


@router.post(
    "/login",
    summary="Log in with a username and password",
    openapi_extra=_LOGIN_BODY,
    responses={
        401: {"description": "wrong credentials"},
        429: {"description": "rate limit or account lockout; see Retry-After"},
    },
)
async def login(
    request: Request, session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> TokenPair:
    """A short-lived access token (``Authorization: Bearer …``) and a refresh token."""
    await _rate_limit(request, redis, settings, "login")
    creds = await _read_credentials(request)
    try:
        user = await users.authenticate(
            session, creds.username, creds.password,
            max_attempts=settings.login_max_attempts,
            lockout_seconds=settings.login_lockout_seconds,
        )  # fmt: skip
    except users.AccountLockedError as exc:
        log.warning("login refused: account %r is locked", creds.username)
        raise HTTPException(
            429, str(exc), headers={"Retry-After": str(max(1, round(exc.retry_after)))}
        ) from exc
    except users.InvalidCredentialsError as exc:
        log.info("login failed for %r from %s", creds.username, _client_address(request))
        raise unauthorized(str(exc)) from exc
    log.info("login: %s (%s)", user.username, user.role)
    return TokenPair.model_validate(await sessions.issue_tokens(session, user, settings))


@router.post("/refresh", summary="Exchange a refresh token for a new token pair")
async def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenPair:
    """Rotates: the refresh token sent is spent. Sending a spent one again revokes every token
    of that login (it must have been copied)."""
    try:
        pair = await sessions.rotate(session, body.refresh_token, settings)
    except sessions.InvalidRefreshTokenError as exc:
        raise unauthorized(str(exc)) from exc
    return TokenPair.model_validate(pair)


@router.get("/me", summary="Who the credentials belong to")
async def me(principal: CurrentUser, session: SessionDep) -> UserView:
    if principal.user_id is None:
        return UserView(id=None, username=principal.username, role=principal.role,
                        via=principal.via)  # fmt: skip
    user = await users.get_user(session, principal.user_id)
    if user is None:
        raise unauthorized("the user of this token no longer exists")
    return UserView(id=user.id, username=user.username, role=principal.role,
                    via=principal.via, email=user.email, active=user.active,
                    created_at=user.created_at)  # fmt: skip


@router.post("/logout", summary="Revoke the current access token and a refresh token")
async def logout(
    request: Request,
    principal: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    body: LogoutRequest | None = None,
) -> dict[str, bool]:
    """The access token used for this request stops working at once (until its expiry);
    the refresh token in the body, if any, and its rotations are revoked."""
    claims = access_claims(request)
    if claims is not None:
        await sessions.revoke_access_token(redis, settings, claims)
    refreshed = False
    if body is not None and body.refresh_token and principal.user_id is not None:
        refreshed = await sessions.revoke_refresh_token(
            session, body.refresh_token, principal.user_id
        )
    return {"access_token_revoked": claims is not None, "refresh_token_revoked": refreshed}


@router.post("/register", status_code=201, summary="Create a user (admin only)")
async def register(body: RegisterRequest, admin: AdminUser, session: SessionDep) -> UserView:
    """The first admin is created on the command line (``marketpulse users create --admin``);
    after that, admins create users here. A taken username (any case) is a 409."""
    if not await users.admin_exists(session):
        raise HTTPException(
            403, "no admin exists yet: create the first one with `marketpulse users create --admin`"
        )
    try:
        user = await users.create_user(
            session, body.username, body.password, role=body.role, email=body.email
        )
    except users.DuplicateUsernameError as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    log.info("user %s (%s) created by %s", user.username, user.role, admin.username)
    return UserView(id=user.id, username=user.username, role=body.role, email=user.email,
                    active=user.active, created_at=user.created_at)  # fmt: skip


@router.get("/users", summary="Every user (admin only)")
async def list_users(_: AdminUser, session: SessionDep) -> list[UserView]:
    return [
        UserView(
            id=u.id,
            username=u.username,
            role="admin" if u.role == "admin" else "user",
            email=u.email,
            active=u.active,
            created_at=u.created_at,
        )
        for u in await users.list_users(session)
    ]


def _owner(principal: Principal) -> int:
    if principal.user_id is None:
        raise HTTPException(400, "API keys belong to a user; with AUTH_ENABLED=false there is none")
    return principal.user_id


@router.post("/api-keys", status_code=201, summary="Create an API key (shown once)")
async def create_api_key(
    body: ApiKeyRequest, principal: CurrentUser, session: SessionDep
) -> NewApiKey:
    """The key acts with your role. Store it now: only its hash is kept."""
    owner = _owner(principal)
    if principal.via == "api_key":
        raise HTTPException(403, "an API key cannot create API keys; log in with a password")
    row, key = await api_keys.create_api_key(session, owner, body.name)
    log.info("API key %d (%s) created for %s", row.id, row.prefix, principal.username)
    return NewApiKey(id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at,
                     key=key)  # fmt: skip


@router.get("/api-keys", summary="Your API keys (without the keys themselves)")
async def list_api_keys(principal: CurrentUser, session: SessionDep) -> list[ApiKeyView]:
    rows = await api_keys.list_api_keys(session, _owner(principal))
    return [
        ApiKeyView(
            id=r.id,
            name=r.name,
            prefix=r.prefix,
            created_at=r.created_at,
            last_used_at=r.last_used_at,
        )
        for r in rows
    ]


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_api_key(
    key_id: Annotated[int, Path(ge=1, le=2**63 - 1)], principal: CurrentUser, session: SessionDep
) -> Response:
    """Your own keys; an admin may revoke anyone's. Unknown or already revoked: 404."""
    found = await api_keys.revoke_api_key(
        session, key_id, _owner(principal), any_owner=principal.role == "admin"
    )
    if not found:
        raise HTTPException(404, f"no API key {key_id}")
    return Response(status_code=204)


def _oidc(request: Request, settings: Settings) -> OidcClient:
    client = getattr(request.app.state, "oidc", None)
    if client is None:
        try:
            client = OidcClient(settings)
        except OidcError as exc:
            raise HTTPException(404, str(exc)) from exc
        request.app.state.oidc = client
    return client


@router.get("/oidc/login", summary="Sign in through the configured OpenID Connect issuer",
            status_code=302, response_class=RedirectResponse)  # fmt: skip
async def oidc_login(request: Request, redis: RedisDep, settings: SettingsDep) -> RedirectResponse:
    """Redirects the browser to the issuer; 404 when OIDC is not configured."""
    client = _oidc(request, settings)
    try:
        return RedirectResponse(await client.authorization_url(redis), status_code=302)
    except OidcUnavailableError as exc:
        raise HTTPException(503, str(exc)) from exc


@router.get("/oidc/callback", summary="Where the issuer returns; answers our token pair")
async def oidc_callback(
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=512)] = None,
) -> TokenPair:
    client = _oidc(request, settings)
    if error:
        raise HTTPException(400, f"the issuer refused the login: {error}")
    if not code or not state:
        raise HTTPException(400, "code and state are required")
    await _rate_limit(request, redis, settings, "oidc")
    try:
        identity = await client.complete(redis, code, state)
        user = await users.user_for_identity(
            session, identity, auto_create=settings.oidc_auto_create
        )
    except OidcUnavailableError as exc:
        raise HTTPException(503, str(exc)) from exc
    except OidcError as exc:
        raise HTTPException(400, str(exc)) from exc
    except users.NoAccountError as exc:
        raise HTTPException(403, str(exc)) from exc
    except users.InvalidCredentialsError as exc:
        raise HTTPException(403, "this account is deactivated") from exc
    log.info("OIDC login: %s (%s)", user.username, user.role)
    return TokenPair.model_validate(await sessions.issue_tokens(session, user, settings))
