"""OpenID Connect sign-in (authorization code flow with PKCE, state and nonce).

``GET /auth/oidc/login`` sends the browser to the issuer's authorization endpoint (from its
discovery document); the issuer sends it back to ``/auth/oidc/callback`` with a code, which is
exchanged at the token endpoint together with the PKCE verifier. The ID token is verified with
PyJWT against the issuer's JWKS (signature, ``iss``, ``aud``, ``exp``, ``iat``, ``nonce``).
The pending state (nonce and verifier) waits in Redis for ten minutes, so any API replica can
finish a login another one started, and each state is usable once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from marketpulse.config import Settings

STATE_TTL_SECONDS = 600
# Asymmetric algorithms only: an HS256 ID token would be signed with the client secret.
_ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


class OidcError(Exception):
    """The login cannot complete (bad state, refused code, invalid ID token)."""


class OidcUnavailableError(OidcError):
    """The issuer could not be reached or answered nonsense."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the issuer says signed in."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636)."""
    raw = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class OidcClient:
    """One configured issuer; caches its discovery document and signing keys."""

    def __init__(self, settings: Settings) -> None:
        if not (settings.oidc_issuer and settings.oidc_client_id and settings.oidc_redirect_uri):
            raise OidcError(
                "OpenID Connect is not configured (set OIDC_ISSUER, OIDC_CLIENT_ID and "
                "OIDC_REDIRECT_URI)"
            )
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.client_secret = (
            settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
        )
        self.redirect_uri = settings.oidc_redirect_uri
        self.scopes = settings.oidc_scopes
        self._state_prefix = f"{settings.redis_key_prefix}:auth:oidc:"
        self._discovery: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKClient | None = None

    async def _get_discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(timeout=10) as http:
                    response = await http.get(url)
                    response.raise_for_status()
                    document = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise OidcUnavailableError(f"OIDC discovery at {url} failed: {exc}") from exc
            needed = ("authorization_endpoint", "token_endpoint", "jwks_uri", "issuer")
            if not isinstance(document, dict) or any(k not in document for k in needed):
                raise OidcUnavailableError(f"OIDC discovery at {url} lacks {', '.join(needed)}")
            if document["issuer"].rstrip("/") != self.issuer:
                raise OidcUnavailableError(
                    f"discovery issuer {document['issuer']!r} is not OIDC_ISSUER {self.issuer!r}"
                )
            self._discovery = document
        return self._discovery

    async def authorization_url(self, redis: Any) -> str:
        """Where to send the browser; remembers state, nonce and PKCE verifier in Redis."""
        discovery = await self._get_discovery()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        pending = json.dumps({"nonce": nonce, "verifier": verifier})
        await redis.set(self._state_prefix + state, pending, ex=STATE_TTL_SECONDS)
        query = urlencode({
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": self.redirect_uri, "scope": self.scopes, "state": state,
            "nonce": nonce, "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        })  # fmt: skip
        endpoint = str(discovery["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def complete(self, redis: Any, code: str, state: str) -> Identity:
        """Exchange ``code`` and verify the ID token; the state is consumed either way."""
        raw = await redis.getdel(self._state_prefix + state)
        if raw is None:
            raise OidcError("unknown or expired OIDC state; start again at /auth/oidc/login")
        pending = json.loads(raw)
        discovery = await self._get_discovery()
        form = {
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": self.redirect_uri, "client_id": self.client_id,
            "code_verifier": pending["verifier"],
        }  # fmt: skip
        if self.client_secret:
            form["client_secret"] = self.client_secret
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.post(str(discovery["token_endpoint"]), data=form)
        except httpx.HTTPError as exc:
            raise OidcUnavailableError(f"OIDC token endpoint unreachable: {exc}") from exc
        if response.status_code != 200:
            raise OidcError(f"the issuer refused the authorization code ({response.status_code})")
        try:
            id_token = response.json()["id_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise OidcError("the issuer's token response has no id_token") from exc
        claims = await self._verify(str(id_token), discovery)
        if not secrets.compare_digest(str(claims.get("nonce", "")), pending["nonce"]):
            raise OidcError("ID token nonce does not match this login")
        email = claims.get("email")
        return Identity(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            email=str(email) if email else None,
            email_verified=claims.get("email_verified") is True,
            name=str(claims["name"]) if claims.get("name") else None,
        )

    async def _verify(self, id_token: str, discovery: dict[str, Any]) -> dict[str, Any]:
        if self._jwks is None:
            self._jwks = jwt.PyJWKClient(str(discovery["jwks_uri"]), cache_keys=True)
        supported = discovery.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in supported if a in _ALLOWED_ALGORITHMS]
        jwks = self._jwks
        try:
            # PyJWKClient fetches with urllib (blocking): keep it off the event loop.
            key = await asyncio.to_thread(jwks.get_signing_key_from_jwt, id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=algorithms,
                audience=self.client_id,
                issuer=discovery["issuer"],
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
                leeway=30,
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise OidcUnavailableError(f"OIDC JWKS unreachable: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise OidcError(f"invalid ID token: {exc}") from exc
        if claims["iat"] > time.time() + 300:
            raise OidcError("invalid ID token: issued in the future")
        return claims
