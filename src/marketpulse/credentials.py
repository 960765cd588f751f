"""Broker credentials: one file under ``MARKETPULSE_HOME``, environment variables win.

``marketpulse login <broker>`` writes tokens here with their expiry; feeds read them again
before every (re)connect, because broker tokens roll over daily. The file is created with mode
0600 and replaced atomically, so a reader never sees half a write.

With ``CREDENTIALS_ENCRYPTION_KEY`` set, the file is encrypted at rest (Fernet, see
:mod:`marketpulse.accounts.secrets`): a plain file written before the key was set is still read,
and encrypted by the next save. An encrypted file without the key, or with another key, is a
clear error rather than a silent fallback.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from marketpulse.accounts.secrets import SecretBox, SecretDecryptionError, SecretsNotConfiguredError
from marketpulse.feeds.base import FeedAuthError

KEY_VARIABLE = "CREDENTIALS_ENCRYPTION_KEY"
_ENCRYPTED_PREFIX = b"gAAAAA"  # every Fernet token starts with version 0x80 + timestamp


class CredentialsError(FeedAuthError):
    """Credentials are missing or expired; the message says which command fixes it."""


class ProviderCredentials(msgspec.Struct, omit_defaults=True):
    values: dict[str, str] = msgspec.field(default_factory=dict)
    expires_at: float | None = None  # epoch seconds
    updated_at: float | None = None


_decoder = msgspec.json.Decoder(dict[str, ProviderCredentials])
_encoder = msgspec.json.Encoder()


class CredentialStore:
    """Read and write ``credentials.json``; ``env`` overrides are applied on read."""

    def __init__(self, path: Path, env: Mapping[str, str] | None = None) -> None:
        self.path = path
        self._env = os.environ if env is None else env

    @classmethod
    def in_home(cls, home: Path, env: Mapping[str, str] | None = None) -> CredentialStore:
        return cls(home / "credentials.json", env)

    def _box(self) -> SecretBox | None:
        key = self._env.get(KEY_VARIABLE)
        if not key:
            return None
        try:
            return SecretBox(key)
        except SecretsNotConfiguredError as exc:
            raise CredentialsError(str(exc)) from exc

    def _read_all(self) -> dict[str, ProviderCredentials]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        if raw.startswith(_ENCRYPTED_PREFIX):
            box = self._box()
            if box is None:
                raise CredentialsError(
                    f"{self.path} is encrypted; set {KEY_VARIABLE} to the key it was saved with"
                )
            try:
                raw = box.decrypt(raw.decode("ascii")).encode("utf-8")
            except (SecretDecryptionError, UnicodeDecodeError) as exc:
                raise CredentialsError(
                    f"{self.path} does not decrypt with {KEY_VARIABLE} (was the key changed?); "
                    "restore the old key, or delete the file and log in again"
                ) from exc
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise CredentialsError(
                f"{self.path} is not a valid credentials file ({exc}); delete it and log in again"
            ) from exc

    def entry(self, provider: str) -> ProviderCredentials:
        return self._read_all().get(provider, ProviderCredentials())

    def get(self, provider: str, env_names: Mapping[str, str]) -> dict[str, str]:
        """The provider's values, each overridden by its environment variable when set.

        ``env_names`` maps a value's name to its variable, e.g. ``{"access_token":
        "KITE_ACCESS_TOKEN"}``.
        """
        values = dict(self.entry(provider).values)
        for key, env_name in env_names.items():
            override = self._env.get(env_name)
            if override:
                values[key] = override
        return values

    def require(
        self, provider: str, env_names: Mapping[str, str], login_hint: str, now: float | None = None
    ) -> dict[str, str]:
        """Like :meth:`get`, but a missing value or an expired file entry is a clear error.

        An expiry only applies to values that came from the file: a token supplied through the
        environment is the user's responsibility.
        """
        values = self.get(provider, env_names)
        missing = [f"{k} ({env_names[k]})" for k in env_names if not values.get(k)]
        if missing:
            raise CredentialsError(
                f"{provider}: missing {', '.join(missing)}; run `{login_hint}` or set the "
                "environment variables"
            )
        entry = self.entry(provider)
        from_env = all(self._env.get(name) for name in env_names.values())
        expires_at = entry.expires_at
        if not from_env and expires_at is not None and (now or time.time()) >= expires_at:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires_at))
            raise CredentialsError(
                f"{provider}: the saved access token expired at {when}; run `{login_hint}`"
            )
        return values

    def save(self, provider: str, values: Mapping[str, str], expires_at: float | None) -> None:
        """Replace the provider's entry (other providers are kept) atomically with mode 0600."""
        data = self._read_all()
        data[provider] = ProviderCredentials(dict(values), expires_at, time.time())
        payload = _encoder.encode(data)
        box = self._box()
        if box is not None:
            payload = box.encrypt(payload.decode("utf-8")).encode("ascii")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".credentials.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT access token, ``{}`` if it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}
