"""A small OpenID Connect provider for tests: discovery, authorize (auto-consent), token with
PKCE verification, and a JWKS with a generated RSA key. ``tamper`` makes it misbehave."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

CLIENT_ID = "marketpulse-test"
CLIENT_SECRET = "provider-client-secret"


@dataclass
class Provider:
    """State of the running provider; tests set ``subject``/``email`` and ``tamper``."""

    url: str = ""
    subject: str = "user-123"
    email: str | None = "oidc.user@example.com"
    email_verified: bool = True
    tamper: str | None = None  # "aud", "nonce", "signature", "issuer", "expired"
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url, "sub": self.subject, "aud": CLIENT_ID, "iat": now,
            "exp": now + 300, "nonce": nonce, "name": "OIDC User",
        }  # fmt: skip
        if self.email:
            claims |= {"email": self.email, "email_verified": self.email_verified}
        key = self.key
        if self.tamper == "aud":
            claims["aud"] = "someone-else"
        elif self.tamper == "nonce":
            claims["nonce"] = "not-the-nonce"
        elif self.tamper == "issuer":
            claims["iss"] = "https://evil.example.com"
        elif self.tamper == "expired":
            claims |= {"iat": now - 4000, "exp": now - 3600}
        elif self.tamper == "signature":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "test-key"})


def _app(provider: Provider) -> FastAPI:
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return {
            "issuer": provider.url,
            "authorization_endpoint": f"{provider.url}/authorize",
            "token_endpoint": f"{provider.url}/token",
            "jwks_uri": f"{provider.url}/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(provider.key.public_key()))
        return {"keys": [{**public, "kid": "test-key", "use": "sig", "alg": "RS256"}]}

    @app.get("/authorize")
    async def authorize(request: Request) -> RedirectResponse:
        q = request.query_params
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            raise HTTPException(400, "bad client or response type")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            raise HTTPException(400, "PKCE S256 required")
        code = secrets.token_urlsafe(16)
        provider.codes[code] = {
            "nonce": q["nonce"], "challenge": q["code_challenge"],
            "redirect_uri": q["redirect_uri"],
        }  # fmt: skip
        target = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}"
        return RedirectResponse(target, status_code=302)

    @app.post("/token")
    async def token(
        grant_type: str = Form(),
        code: str = Form(),
        redirect_uri: str = Form(),
        client_id: str = Form(),
        code_verifier: str = Form(),
        client_secret: str = Form(""),
    ) -> dict[str, Any]:
        provider.token_requests.append({"code": code, "client_secret": client_secret})
        pending = provider.codes.pop(code, None)
        if grant_type != "authorization_code" or pending is None:
            raise HTTPException(400, "invalid_grant")
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            raise HTTPException(401, "invalid_client")
        if redirect_uri != pending["redirect_uri"]:
            raise HTTPException(400, "redirect_uri mismatch")
        digest = hashlib.sha256(code_verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != pending["challenge"]:
            raise HTTPException(400, "PKCE verification failed")
        return {"access_token": "provider-at", "token_type": "Bearer",
                "id_token": provider.id_token(pending["nonce"])}  # fmt: skip

    return app


@contextlib.asynccontextmanager
async def running_provider() -> AsyncIterator[Provider]:
    """Serve a provider on 127.0.0.1 (a free port) for the duration of the block."""
    provider = Provider()
    config = uvicorn.Config(_app(provider), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    provider.url = f"http://127.0.0.1:{port}"
    try:
        yield provider
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
