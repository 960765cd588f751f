"""``marketpulse login kite`` against the emulator's session endpoint, through the real CLI."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

from click.testing import Result

from marketpulse.feeds.kite.auth import token_expiry
from marketpulse.feeds.kite.credentials import load_session
from tests.integration.kite.helpers import CREDENTIALS, invoke_cli, kite_emulator


async def login(
    kite_api: str, home: Path, *args: str, secret: str = "test_api_secret", input: str | None = None
) -> Result:
    env: dict[str, str | None] = {
        "MARKETPULSE_HOME": str(home), "KITE_API_URL": kite_api, "KITE_API_KEY": "test_api_key",
        "KITE_API_SECRET": secret, "KITE_ACCESS_TOKEN": None, "KITE_REQUEST_TOKEN": None,
        "KITE_LOGIN_URL": "https://kite.example/connect/login",
    }  # fmt: skip
    return await invoke_cli(["login", "kite", *args], env, input)


async def test_login_with_the_redirect_url_saves_a_private_token_valid_until_6am_ist(
    tmp_path: Path,
) -> None:
    redirect = "https://example.com/callback?action=login&status=success&request_token=Rq1Tok2"
    async with kite_emulator() as kite:
        before = time.time()
        result = await login(kite.api_url, tmp_path, "--request-token", redirect)
        after = time.time()
    assert result.exit_code == 0, result.output
    assert "https://kite.example/connect/login?v=3&api_key=test_api_key" in result.output
    saved = json.loads((tmp_path / "credentials.json").read_text())["kite"]
    assert saved["values"] == {
        "api_key": "test_api_key", "access_token": "test_access_token",
        "user_id": "MP0001", "public_token": "test_public_token",
    }  # fmt: skip
    assert saved["expires_at"] in {token_expiry(before), token_expiry(after)}
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600
    assert "Logged in to Kite as MP0001" in result.output
    assert str(tmp_path / "credentials.json") in result.output.replace("\n", "")
    assert load_session(tmp_path, env={}) == CREDENTIALS  # what the feed will read


async def test_without_a_request_token_the_redirect_url_is_prompted_for(tmp_path: Path) -> None:
    async with kite_emulator() as kite:
        result = await login(kite.api_url, tmp_path, input="https://e.x/cb?request_token=Typed99\n")
    assert result.exit_code == 0, result.output
    assert "paste the address Kite redirects your browser to" in " ".join(result.output.split())
    assert load_session(tmp_path, env={}) == CREDENTIALS


async def test_a_used_request_token_is_refused_with_kites_message_and_advice(
    tmp_path: Path,
) -> None:
    async with kite_emulator() as kite:
        first = await login(kite.api_url, tmp_path, "-t", "Once1234")
        again = await login(kite.api_url, tmp_path / "other", "-t", "Once1234")
    assert first.exit_code == 0, first.output
    assert again.exit_code == 1
    output = " ".join(again.output.split())
    assert (
        "Kite refused the login (HTTP 403, TokenException): Token is invalid or has expired."
        in output
    )
    assert "open the login URL again" in output
    assert not (tmp_path / "other" / "credentials.json").exists()


async def test_a_wrong_api_secret_points_at_the_secret(tmp_path: Path) -> None:
    async with kite_emulator() as kite:
        result = await login(kite.api_url, tmp_path, "-t", "Fresh1234", secret="wrong")
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert (
        "Invalid `checksum`." in output and "check that the api_secret (KITE_API_SECRET)" in output
    )


async def test_an_unreachable_api_and_a_failed_browser_login_are_clear_errors(
    tmp_path: Path,
) -> None:
    down = await login("http://127.0.0.1:9", tmp_path, "-t", "Fresh1234")
    assert down.exit_code == 1
    assert "cannot reach http://127.0.0.1:9/session/token" in " ".join(down.output.split())
    failed = await login("http://127.0.0.1:9", tmp_path, "-t", "https://x/cb?status=error")
    assert failed.exit_code == 1
    assert "status=error" in failed.output and "log in again" in " ".join(failed.output.split())
