"""The credentials file: 0600, atomic, environment overrides, clear errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from marketpulse.accounts.secrets import generate_key
from marketpulse.credentials import KEY_VARIABLE, CredentialsError, CredentialStore

ENV = {"api_key": "KITE_API_KEY", "access_token": "KITE_ACCESS_TOKEN"}


def test_saved_values_come_back_and_the_file_is_private(tmp_path: Path) -> None:
    store = CredentialStore.in_home(tmp_path / "home", env={})
    store.save("kite", {"api_key": "k", "access_token": "t"}, expires_at=2e9)
    store.save("angelone", {"feed_token": "f"}, expires_at=None)
    assert store.get("kite", ENV) == {"api_key": "k", "access_token": "t"}
    assert store.entry("angelone").values == {"feed_token": "f"}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert list(store.path.parent.glob(".credentials.*")) == []


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    store = CredentialStore.in_home(tmp_path, env={"KITE_ACCESS_TOKEN": "from-env"})
    store.save("kite", {"api_key": "k", "access_token": "old"}, expires_at=None)
    assert store.get("kite", ENV) == {"api_key": "k", "access_token": "from-env"}


def test_missing_values_name_the_variables_and_the_login_command(tmp_path: Path) -> None:
    store = CredentialStore.in_home(tmp_path, env={})
    with pytest.raises(CredentialsError, match=r"missing api_key \(KITE_API_KEY\).*marketpulse"):
        store.require("kite", ENV, "marketpulse login kite")


def test_an_expired_saved_token_is_reported_with_its_expiry(tmp_path: Path) -> None:
    store = CredentialStore.in_home(tmp_path, env={})
    store.save("kite", {"api_key": "k", "access_token": "t"}, expires_at=1000.0)
    with pytest.raises(CredentialsError, match="expired at 1970-01-01 00:16:40 UTC"):
        store.require("kite", ENV, "marketpulse login kite", now=2000.0)
    assert store.require("kite", ENV, "x", now=999.0)["access_token"] == "t"


def test_a_token_from_the_environment_is_not_judged_by_the_file_expiry(tmp_path: Path) -> None:
    env = {"KITE_API_KEY": "k", "KITE_ACCESS_TOKEN": "fresh"}
    store = CredentialStore.in_home(tmp_path, env=env)
    store.save("kite", {"api_key": "k", "access_token": "stale"}, expires_at=1000.0)
    assert store.require("kite", ENV, "x", now=2000.0)["access_token"] == "fresh"


def test_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    store = CredentialStore.in_home(tmp_path, env={})
    store.path.write_text("{not json")
    with pytest.raises(CredentialsError, match="not a valid credentials file"):
        store.get("kite", ENV)


def test_with_an_encryption_key_the_file_holds_no_token_in_clear(tmp_path: Path) -> None:
    key = generate_key()
    store = CredentialStore.in_home(tmp_path, env={KEY_VARIABLE: key})
    store.save("kite", {"api_key": "k", "access_token": "secret-token-123"}, expires_at=2e9)
    raw = store.path.read_bytes()
    assert b"secret-token-123" not in raw and b"access_token" not in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    again = CredentialStore.in_home(tmp_path, env={KEY_VARIABLE: key})
    assert again.get("kite", ENV) == {"api_key": "k", "access_token": "secret-token-123"}
    assert again.entry("kite").expires_at == 2e9


def test_a_plain_file_is_read_with_a_key_and_encrypted_by_the_next_save(tmp_path: Path) -> None:
    # Tokens long enough that random ciphertext cannot contain them by chance ("t1" once did).
    kite = {"access_token": "plain-kite-access-token-0001"}
    dhan = {"access_token": "plain-dhan-access-token-0002"}
    CredentialStore.in_home(tmp_path, env={}).save("kite", kite, None)
    key = generate_key()
    store = CredentialStore.in_home(tmp_path, env={KEY_VARIABLE: key})
    assert store.entry("kite").values == kite
    store.save("dhan", dhan, None)
    assert b"plain-kite-access-token" not in store.path.read_bytes()
    assert store.entry("kite").values == kite
    assert store.entry("dhan").values == dhan


def test_an_encrypted_file_without_its_key_is_a_clear_error_and_is_kept(tmp_path: Path) -> None:
    key = generate_key()
    CredentialStore.in_home(tmp_path, env={KEY_VARIABLE: key}).save("kite", {"a": "b"}, None)
    before = (tmp_path / "credentials.json").read_bytes()
    with pytest.raises(CredentialsError, match="encrypted; set CREDENTIALS_ENCRYPTION_KEY"):
        CredentialStore.in_home(tmp_path, env={}).entry("kite")
    other = CredentialStore.in_home(tmp_path, env={KEY_VARIABLE: generate_key()})
    with pytest.raises(CredentialsError, match="does not decrypt"):
        other.entry("kite")
    with pytest.raises(CredentialsError, match="does not decrypt"):
        other.save("kite", {"a": "c"}, None)  # never overwrites what it cannot read
    assert (tmp_path / "credentials.json").read_bytes() == before
    bad = CredentialStore.in_home(tmp_path, env={KEY_VARIABLE: "not-a-key"})
    with pytest.raises(CredentialsError, match="not a valid key"):
        bad.entry("kite")
