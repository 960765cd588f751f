"""Pure pieces of accounts: JWT access tokens, API keys, PKCE, password hashing, settings."""

from __future__ import annotations

import base64

import jwt
import pytest
from pydantic import SecretStr, ValidationError

from marketpulse.accounts.oidc import pkce_challenge
from marketpulse.accounts.passwords import hash_password, verify_password
from marketpulse.accounts.tokens import (
    InvalidTokenError,
    decode_access_token,
    digest,
    encode_access_token,
    is_api_key,
    looks_like_jwt,
    new_api_key,
)
from marketpulse.config import DEFAULT_JWT_SECRET, Settings

SECRET = "k" * 40


def test_access_token_round_trips_its_claims() -> None:
    token, issued = encode_access_token(7, "alice", "admin", SECRET, now=1_000, ttl_seconds=60)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["sub"] == "7" and claims["type"] == "access" and claims["exp"] == 1_060
    assert looks_like_jwt(token)
    with pytest.raises(InvalidTokenError, match="expired"):
        decode_access_token(token, SECRET)  # 1970: long expired
    import time

    fresh, issued = encode_access_token(
        7, "alice", "admin", SECRET, now=int(time.time()), ttl_seconds=60
    )
    decoded = decode_access_token(fresh, SECRET)
    assert decoded == issued and decoded.role == "admin" and decoded.user_id == 7


def test_access_token_with_another_secret_or_algorithm_is_refused() -> None:
    import time

    token, _ = encode_access_token(1, "a", "user", SECRET, now=int(time.time()), ttl_seconds=60)
    with pytest.raises(InvalidTokenError):
        decode_access_token(token, "x" * 40)
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    unsigned = f"{header}.{token.split('.')[1]}."
    with pytest.raises(InvalidTokenError):
        decode_access_token(unsigned, SECRET)


def test_api_keys_are_random_prefixed_and_hashed() -> None:
    key, prefix = new_api_key()
    other, _ = new_api_key()
    assert key != other and key.startswith(prefix) and is_api_key(key)
    assert len(key) >= 40 and not looks_like_jwt(key)
    assert digest(key) != key and len(digest(key)) == 64 and digest(key) == digest(key)


def test_pkce_challenge_is_unpadded_base64url_of_the_sha256() -> None:
    from cryptography.hazmat.primitives import hashes

    verifier = "dBjftJeZ4CVP-mJ92K9qpLI6q0ZT4xjQNBZFt5rF1Zs"
    sha = hashes.Hash(hashes.SHA256())
    sha.update(verifier.encode())
    expected = base64.urlsafe_b64encode(sha.finalize()).decode().rstrip("=")
    challenge = pkce_challenge(verifier)
    assert challenge == expected and len(challenge) == 43
    assert "=" not in challenge and "+" not in challenge and "/" not in challenge


def test_passwords_are_argon2_hashed_and_verified() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)[0] is True
    assert verify_password("wrong horse", stored)[0] is False
    assert verify_password("anything", None) == (False, None)


def test_production_refuses_the_default_or_a_short_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(_env_file=None, environment="production")
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(_env_file=None, environment="production", jwt_secret=SecretStr("short"))
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(_env_file=None, environment="production", jwt_secret=SecretStr(DEFAULT_JWT_SECRET))
    ok = Settings(_env_file=None, environment="production", jwt_secret=SecretStr(SECRET))
    assert ok.auth_enabled is True


def test_production_refuses_auth_disabled_but_development_allows_it() -> None:
    with pytest.raises(ValidationError, match="AUTH_ENABLED"):
        Settings(_env_file=None, environment="production", jwt_secret=SecretStr(SECRET),
                 auth_enabled=False)  # fmt: skip
    assert Settings(_env_file=None, auth_enabled=False).auth_enabled is False


def test_production_refusal_comes_from_the_environment_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(_env_file=None)
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings(_env_file=None)
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
