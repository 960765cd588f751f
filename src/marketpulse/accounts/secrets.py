"""Encryption at rest for secrets marketpulse must be able to read back (broker credentials).

Passwords and API keys are hashed, never encrypted; this is for the other kind: values the
service itself has to present to a broker later. Fernet (AES-128-CBC + HMAC-SHA256) with the
key from ``CREDENTIALS_ENCRYPTION_KEY``; a wrong or rotated key is a clear error, never
garbage.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from marketpulse.config import Settings


class SecretsNotConfiguredError(RuntimeError):
    """No ``CREDENTIALS_ENCRYPTION_KEY``: secrets cannot be stored or read."""


class SecretDecryptionError(RuntimeError):
    """A stored secret does not decrypt with the configured key (rotated or wrong key)."""


def generate_key() -> str:
    """A fresh key in the form ``CREDENTIALS_ENCRYPTION_KEY`` expects."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts and decrypts short text secrets with one key."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise SecretsNotConfiguredError(
                "CREDENTIALS_ENCRYPTION_KEY is not a valid key (32 url-safe base64-encoded "
                "bytes); generate one with `marketpulse users generate-key`"
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        key = settings.credentials_encryption_key
        if key is None:
            raise SecretsNotConfiguredError(
                "CREDENTIALS_ENCRYPTION_KEY is not set, so secrets cannot be stored encrypted; "
                "generate one with `marketpulse users generate-key`"
            )
        return cls(key.get_secret_value())

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise SecretDecryptionError(
                "a stored secret does not decrypt with CREDENTIALS_ENCRYPTION_KEY "
                "(was the key changed?)"
            ) from exc
