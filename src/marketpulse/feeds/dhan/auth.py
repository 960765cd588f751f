"""``marketpulse login dhan``: save a Dhan client id and access token.

Dhan issues access tokens on web.dhan.co (Profile → Access DhanHQ APIs) or through its consent
flow; either way the user ends up holding a JWT valid for about 24 hours. Logging in therefore
means storing that token with its expiry (the JWT's ``exp`` claim, read without verification)
so that the feed can say "expired, log in again" instead of reconnecting into 807 disconnects.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer
from rich.console import Console

from marketpulse.credentials import CredentialStore, jwt_claims
from marketpulse.feeds import login_flow
from marketpulse.feeds.dhan.credentials import PROVIDER

console = Console(stderr=True)

DEFAULT_VALIDITY_SECONDS = 24 * 3600
"""Used when the token is not a JWT with an ``exp`` claim (Dhan documents 24 hours)."""


def token_expiry(token: str, now: float) -> float:
    """When ``token`` expires: its JWT ``exp``, else ``now`` + 24 hours."""
    exp = jwt_claims(token).get("exp")
    return float(exp) if isinstance(exp, int | float) else now + DEFAULT_VALIDITY_SECONDS


def login_cli(
    client_id: Annotated[
        str | None, typer.Option(help="Dhan client id (default: DHAN_CLIENT_ID, else prompted)")
    ] = None,
    access_token: Annotated[
        str | None,
        typer.Option(
            help="access token from web.dhan.co (default: DHAN_ACCESS_TOKEN, else prompted)"
        ),
    ] = None,
) -> None:
    """Save a Dhan client id and access token (generate the token on web.dhan.co → Profile →
    Access DhanHQ APIs); the token's expiry is read from it."""
    settings = login_flow.load_settings(console)
    cid = login_flow.given_or_prompt("Dhan client id", client_id, os.environ.get("DHAN_CLIENT_ID"))
    token = login_flow.given_or_prompt(
        "Dhan access token", access_token, os.environ.get("DHAN_ACCESS_TOKEN"), hide_input=True
    )
    claims = jwt_claims(token)
    owner = claims.get("dhanClientId")
    if owner is not None and str(owner) != cid:
        console.print(f"[bold red]error:[/] this access token belongs to client {owner}, not {cid}")
        raise typer.Exit(1)
    now = time.time()
    expires_at = token_expiry(token, now)
    if expires_at <= now:
        console.print(
            "[bold red]error:[/] this access token has already expired; generate a new one"
        )
        raise typer.Exit(1)
    store = CredentialStore.in_home(settings.marketpulse_home)
    login_flow.save_or_exit(
        console, store, PROVIDER, {"client_id": cid, "access_token": token}, expires_at
    )
    console.print(
        f"Dhan credentials for client {cid} saved to {store.path} "
        f"(valid until {login_flow.expiry_text(expires_at)})."
    )
