"""The one settings object. Every knob is an environment variable (or a line in ``.env``).

The README's settings table lists these names; keep the two in step.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from marketpulse.event_loop import EventLoopChoice


def redact_url(url: str) -> str:
    """A server URL with its password hidden, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


# Development only: the service refuses to start with it when ENVIRONMENT=production.
DEFAULT_JWT_SECRET = "marketpulse-development-secret-change-me"
MIN_JWT_SECRET_LENGTH = 32

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off", ""}


def read_symbols_file(path: Path) -> list[str]:
    """Enabled ``symbol_name`` values of a ``symbol_name,enabled`` CSV, in file order.

    Errors name the file and line, because a typo here would otherwise silently stream nothing.
    """
    import csv

    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"symbol_name", "enabled"} <= {
                f.strip() for f in reader.fieldnames
            }:
                raise ValueError(f"{path}: the header must have columns symbol_name,enabled")
            symbols = []
            for line, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                name, enabled = row.get("symbol_name", ""), row.get("enabled", "").lower()
                if enabled not in _TRUE | _FALSE:
                    raise ValueError(
                        f"{path}:{line}: enabled must be true or false, got {enabled!r}"
                    )
                if name and enabled in _TRUE:
                    symbols.append(name)
            return symbols
    except OSError as exc:
        raise ValueError(f"cannot read SYMBOLS_FILE {path}: {exc.strerror}") from exc


class Settings(BaseSettings):
    """Runtime configuration, read from the environment.

    ``REDIS_URL``/``DATABASE_URL`` left unset means "start the embedded servers" (see
    :mod:`marketpulse.embedded`), so a laptop with neither server still runs everything.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # --- servers
    redis_url: str | None = Field(None, description="Redis/Valkey URL; unset = embedded Valkey")
    database_url: str | None = Field(
        None, description="PostgreSQL URL; unset = embedded PostgreSQL"
    )
    marketpulse_home: Path = Field(
        Path.home() / ".local" / "share" / "marketpulse",
        description="data directory for embedded servers and credentials",
    )
    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"

    # --- Accounts and security (issue #9)
    credentials_encryption_key: SecretStr | None = Field(
        None, description="Fernet key that encrypts broker credentials stored in PostgreSQL"
    )
    auth_enabled: bool = Field(
        True, description="false = every caller is an anonymous admin (never in production)"
    )
    jwt_secret: SecretStr = Field(
        SecretStr(DEFAULT_JWT_SECRET),
        description="HS256 key of access tokens; production needs your own of 32+ characters",
    )
    jwt_access_ttl_seconds: int = Field(900, ge=1, description="access token lifetime")
    jwt_refresh_ttl_seconds: int = Field(
        14 * 86_400, ge=60, description="refresh token lifetime (each refresh rotates it)"
    )
    login_max_attempts: int = Field(
        5, ge=1, description="consecutive wrong passwords that lock an account"
    )
    login_lockout_seconds: float = Field(900.0, gt=0, description="how long a lockout lasts")
    login_rate_limit: int = Field(
        20, ge=1, description="login attempts per client address per LOGIN_RATE_WINDOW_SECONDS"
    )
    login_rate_window_seconds: int = Field(60, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated origins allowed by CORS (empty = off)"
    )
    oidc_issuer: str | None = Field(
        None, description="OpenID Connect issuer URL (its discovery document); unset = no OIDC"
    )
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_uri: str | None = Field(
        None, description="this service's /auth/oidc/callback URL as registered at the issuer"
    )
    oidc_scopes: str = "openid email profile"
    oidc_auto_create: bool = Field(
        True, description="create a user (role user) on a first OIDC login"
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_production_security(self) -> Settings:
        if self.environment != "production":
            return self
        if not self.auth_enabled:
            raise ValueError("AUTH_ENABLED=false is not allowed when ENVIRONMENT=production")
        secret = self.jwt_secret.get_secret_value()
        if secret == DEFAULT_JWT_SECRET or len(secret) < MIN_JWT_SECRET_LENGTH:
            raise ValueError(
                "JWT_SECRET must be set to a random value of at least "
                f"{MIN_JWT_SECRET_LENGTH} characters when ENVIRONMENT=production "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return self

    # --- API
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    ws_client_queue_size: int = Field(
        1000, ge=1, description="max distinct pending messages per WebSocket client"
    )
    ws_client_max_lag_seconds: float = Field(
        5.0, gt=0, description="a client that cannot drain its queue for this long is dropped"
    )
    ws_compression: bool = Field(
        False,
        description="accept WebSocket permessage-deflate; off: every message would be "
        "compressed once per client, and tick JSON is small (CPU matters more than bytes)",
    )
    event_loop: EventLoopChoice = Field(
        "auto",
        description="event loop of `marketpulse serve`/`demo`: auto = uvloop when installed "
        "(it comes with uvicorn[standard] on Linux and macOS), else asyncio's",
    )

    # --- Redis data plane
    redis_cluster: Literal["auto", "true", "false"] = Field(
        "auto", description="Redis Cluster client: auto = ask the server (INFO cluster)"
    )
    redis_key_prefix: str = Field("mp", description="prefix of marketpulse's internal keys")
    cache_key_prefix: str = Field("market", description="prefix of snapshot keys")
    cache_ttl_seconds: int = Field(300, ge=1)
    cache_snapshot_count: int = Field(
        25, ge=0, description="recent snapshots kept per symbol and mode (0 = no history list)"
    )
    cache_scan_batch_size: int = Field(500, ge=1, description="SCAN COUNT for snapshot scans")
    symbol_stream_prefix: str = Field(
        "market_data_stream", description="per-symbol streams are {prefix}:{SYMBOL}"
    )
    symbol_stream_maxlen: int = Field(
        1_000,
        ge=0,
        description="approximate length per symbol stream (0 = no symbol streams); Redis holds "
        "up to instruments x this many tick JSONs (~0.3-0.6 KB each)",
    )
    firehose_shards: int = Field(4, ge=1, le=1024)
    firehose_maxlen: int = Field(100_000, ge=1000, description="approximate length per shard")
    ingest_buffer_max_ticks: int = Field(
        200_000, ge=1000, description="ticks held in memory while Redis is unreachable"
    )
    firehose_spill_high_ratio: float = Field(
        0.8, gt=0, le=1, description="store backlog / FIREHOSE_MAXLEN at which ingest spills"
    )
    firehose_spill_low_ratio: float = Field(
        0.5, gt=0, lt=1, description="store backlog / FIREHOSE_MAXLEN below which it replays"
    )
    ingest_spill_dir: Path | None = Field(
        None, description="directory of the spill file; default MARKETPULSE_HOME/spill"
    )

    # --- store
    tick_buffer_size: int = Field(
        10_000,
        ge=1,
        description="most ticks per store batch; a batch is also written every "
        "FLUSH_INTERVAL_SECONDS, so this only binds under load, where the candle merge costs "
        "per batch and larger batches keep the store ahead of the feed",
    )
    flush_interval_seconds: float = Field(1.0, gt=0)
    store_consumer_group: str = "store"
    store_consumer_name: str | None = Field(None, description="default: hostname-pid")
    partition_days_ahead: int = Field(2, ge=0, le=60)
    tick_retention_days: int = Field(
        7, ge=0, description="days of ticks kept in PostgreSQL (0 = keep forever)"
    )
    timescaledb: Literal["auto", "on", "off"] = Field(
        "auto",
        description="make ticks/candles compressed hypertables at migration 0006: auto = when "
        "the server offers TimescaleDB 2.11+, on = fail without it, off = never",
    )
    store_claim_idle_seconds: float = Field(
        60.0, gt=0, description="entries a dead store worker left pending this long are claimed"
    )

    # --- candles and history
    candles_enabled: bool = Field(True, description="build 1m/5m/15m/1h/1d candles from ticks")
    candle_stream_maxlen: int = Field(
        10_000, ge=100, description="approximate length of the live candle update stream"
    )
    candle_close_grace_seconds: float = Field(
        2.0, ge=0, description="a candle closes this long after its bucket ends"
    )
    candle_rollup_seconds: float = Field(
        1.0,
        gt=0,
        description="how often the store rolls 1m candles up into 5m/15m/1h/1d and closes ended "
        "candles; the coarser candles lag the 1m ones by at most this long",
    )
    gap_repair_enabled: bool = Field(
        True, description="backfill 1m candles over feed outages from the provider's history"
    )
    gap_min_seconds: float = Field(
        5.0, ge=0, description="outages shorter than this are not recorded as gaps"
    )
    backfill_max_days: int = Field(
        3660, ge=1, description="longest range one backfill request may ask for"
    )

    # --- quote service (/api/quotes, /api/indices)
    quote_providers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="providers asked over REST when the live snapshot is old, in order "
        "(empty = the FEEDS that have a quote API)",
    )
    market_data_cache_duration: float = Field(
        60.0, gt=0, description="a live or fetched price younger than this is answered as is"
    )
    market_data_stale_threshold: float = Field(
        300.0, gt=0, description="prices older than this are flagged stale; unrequested "
        "symbols are dropped after it",
    )  # fmt: skip
    market_data_update_interval: float = Field(
        60.0, gt=0, description="how often requested symbols are refreshed in the background"
    )
    market_data_subscribe: bool = Field(
        True, description="stream requested symbols on the running feeds (through Redis)"
    )
    quote_breaker_failures: int = Field(
        5, ge=1, description="consecutive provider failures that open its circuit breaker"
    )
    quote_breaker_reset_seconds: float = Field(
        30.0, gt=0, description="how long an open breaker refuses before one trial request"
    )

    # --- feeds
    feeds: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["sim"], description="comma-separated feeds to run"
    )
    subscribe: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated symbols (or broker tokens) the feeds stream at start",
    )
    subscribe_mode: Literal["ltp", "quote", "full"] = "full"
    symbols_file: Path | None = Field(
        None, description="CSV with columns symbol_name,enabled; enabled rows join SUBSCRIBE"
    )
    reconnect_min_seconds: float = Field(0.5, gt=0)
    reconnect_max_seconds: float = Field(30.0, gt=0)
    feed_heartbeat_timeout_seconds: float = Field(
        15.0, gt=0, description="no frame at all for this long = dead socket"
    )
    feed_stall_timeout_seconds: float = Field(
        60.0, gt=0, description="no ticks while the market is open for this long = dead feed"
    )

    # --- broker endpoints (point them at `marketpulse emulate <broker>` to work offline)
    kite_ws_url: str = "wss://ws.kite.trade"
    kite_api_url: str = "https://api.kite.trade"
    kite_login_url: str = "https://kite.zerodha.com/connect/login"
    angelone_ws_url: str = "wss://smartapisocket.angelone.in/smart-stream"
    angelone_api_url: str = "https://apiconnect.angelone.in"
    angelone_scrip_master_url: str = (
        "https://margincalculator.angelbroking.com/OpenAPI_File/files/OpenAPIScripMaster.json"
    )
    # dhan (feeds/dhan)
    dhan_ws_url: str = "wss://api-feed.dhan.co"
    dhan_depth_ws_url: str = "wss://depth-api-feed.dhan.co/twentydepth"
    dhan_api_url: str = "https://api.dhan.co"
    dhan_scrip_master_url: str = "https://images.dhan.co/api-data/api-scrip-master.csv"
    dhan_depth_levels: Literal[5, 20] = Field(
        5, description="20 = also stream NSE_EQ/NSE_FNO full-mode books from the 20-level socket"
    )
    dhan_ltt_offset_seconds: int = Field(
        19_800, description="subtracted from Dhan's LTT (IST-as-UTC); 0 if it is true epoch"
    )
    # fyers (feeds/fyers)
    fyers_ws_url: str = "wss://socket.fyers.in/hsm/v1-5/prod"
    fyers_api_url: str = Field(
        "https://api-t1.fyers.in", description="base of /api/v3 (login) and /data (REST)"
    )
    fyers_public_url: str = Field(
        "https://public.fyers.in", description="base of /sym_details (symbol masters)"
    )
    fyers_master_files: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["NSE_CM", "NSE_FO", "BSE_CM", "BSE_FO", "MCX_COM", "NSE_CD"],
        description="symbol-master CSVs that `instruments sync --provider fyers` loads",
    )
    fyers_redirect_uri: str = "https://127.0.0.1/fyers"
    fyers_lite_mode: bool = Field(False, description="stream LTP only (the socket's lite mode)")
    fyers_max_symbols: int = Field(5000, ge=1, description="symbols per connection (API key)")
    fyers_max_connections: int = Field(1, ge=1, description="data sockets per API key")
    fyers_ping_interval_seconds: float = Field(10.0, gt=0)

    @field_validator("fyers_master_files", mode="before")
    @classmethod
    def _split_fyers_files(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # paytm (feeds/paytm)
    paytm_ws_url: str = Field(
        "wss://developer-ws.paytmmoney.com/broadcast/user/v1/data",
        description="broadcast feed (`?x_jwt_token=<public access token>` is appended)",
    )
    paytm_api_url: str = Field(
        "https://developer.paytmmoney.com", description="REST base (gettoken, live price)"
    )
    paytm_login_url: str = Field(
        "https://login.paytmmoney.com/merchant-login", description="browser login page"
    )
    paytm_security_master_url: str = Field(
        "https://developer.paytmmoney.com/data/v1/scrips/security_master.csv",
        description="instrument master CSV (no login needed)",
    )
    paytm_max_instruments_per_connection: int = Field(
        200, ge=1, description="instruments per socket (unverified third-party figure)"
    )
    paytm_max_connections: int = Field(
        1, ge=1, description="sockets per token (unverified third-party figure)"
    )
    paytm_quote_batch_size: int = Field(
        100, ge=1, description="prefs per live-price request (limit unknown)"
    )
    paytm_quote_rate_per_second: float = Field(
        5.0, gt=0, description="live-price requests per second (limit unknown)"
    )
    # yahoo (feeds/yahoo)
    yahoo_ws_url: str = Field(
        "wss://streamer.finance.yahoo.com/?version=2", description="streamer WebSocket"
    )
    yahoo_chart_url: str = Field(
        "https://query2.finance.yahoo.com/v8/finance/chart",
        description="chart API; the symbol is appended as a path segment",
    )
    yahoo_cookie_url: str = Field(
        "https://fc.yahoo.com",
        description="visited once for the cookie the crumb needs; empty = skip",
    )
    yahoo_crumb_url: str = Field(
        "https://query1.finance.yahoo.com/v1/test/getcrumb",
        description="crumb added to chart requests; empty = send none",
    )
    yahoo_rate_limit_per_second: float = Field(
        2.0, gt=0, description="chart API requests per second (no published limit)"
    )
    yahoo_max_connections: int = Field(10, ge=1, description="streamer sockets (100 symbols each)")
    yahoo_resubscribe_seconds: float = Field(
        15.0, ge=0, description="re-send each socket's subscriptions this often; 0 = never"
    )

    # --- simulator
    sim_seed: int = 42
    sim_ticks_per_second: float = Field(200.0, gt=0, description="total simulated ticks/s")
    sim_always_open: bool = False
    sim_extra_instruments: int = Field(
        0, ge=0, description="synthetic instruments added to the default universe"
    )

    @field_validator("feeds", "subscribe", "quote_providers", mode="before")
    @classmethod
    def _split_feeds(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _read_symbols_file(self) -> Settings:
        if self.symbols_file is not None:
            extra = read_symbols_file(self.symbols_file)
            self.subscribe = list(dict.fromkeys([*self.subscribe, *extra]))
        return self

    @model_validator(mode="after")
    def _check_spill_watermarks(self) -> Settings:
        if self.firehose_spill_low_ratio >= self.firehose_spill_high_ratio:
            raise ValueError(
                "firehose_spill_low_ratio must be below firehose_spill_high_ratio "
                f"({self.firehose_spill_low_ratio} >= {self.firehose_spill_high_ratio})"
            )
        return self

    @property
    def spill_dir(self) -> Path:
        """Where ingest parks firehose entries the store cannot take yet."""
        return self.ingest_spill_dir or self.marketpulse_home / "spill"

    @property
    def cluster_mode(self) -> bool | None:
        """``REDIS_CLUSTER`` as the connection layer takes it: ``None`` = detect."""
        return None if self.redis_cluster == "auto" else self.redis_cluster == "true"

    @property
    def bus_tag(self) -> str:
        """The hash tag of every internal key (``{mp}``): the firehose shards, counters, control
        stream and spill markers are read or written together (XREADGROUP over all shards, the
        spill replay's MULTI/EXEC), so in a Redis Cluster they must live in one slot."""
        return f"{{{self.redis_key_prefix}}}"

    def spill_marker_key(self, file_id: str) -> str:
        """Written with every chunk replayed from spill file ``file_id`` (the offset it reached),
        so a resend after a broken connection knows whether Redis already applied it."""
        return f"{self.bus_tag}:spill:replayed:{file_id}"

    @cached_property
    def consumer_name(self) -> str:
        import os
        import socket

        return self.store_consumer_name or f"{socket.gethostname()}-{os.getpid()}"

    def firehose_key(self, shard: int) -> str:
        return f"{self.bus_tag}:ticks:{shard}"

    @property
    def firehose_keys(self) -> list[str]:
        return [self.firehose_key(shard) for shard in range(self.firehose_shards)]

    def snapshot_key(self, security_id: str, packet_type: str) -> str:
        """``market:{RELIANCE.NSE}:full``: the symbol is the hash tag, so a symbol's snapshots,
        histories and stream share a cluster slot (read, expired and deleted together)."""
        return f"{self.cache_key_prefix}:{{{security_id}}}:{packet_type}"

    def history_key(self, security_id: str, packet_type: str) -> str:
        return f"{self.cache_key_prefix}:{{{security_id}}}:{packet_type}:history"

    def symbol_stream_key(self, symbol: str) -> str:
        return f"{self.symbol_stream_prefix}:{{{symbol}}}"

    @property
    def feeds_key(self) -> str:
        return f"{self.bus_tag}:feeds"

    @property
    def stats_key(self) -> str:
        return f"{self.bus_tag}:stats"

    @property
    def subscriptions_key(self) -> str:
        return f"{self.bus_tag}:subscriptions"

    @property
    def candle_stream_key(self) -> str:
        """Live candle updates (fields ``k`` = channel ``candles:{interval}:{SYMBOL}``, ``t``)."""
        return f"{self.bus_tag}:candles"

    @property
    def gaps_key(self) -> str:
        """Feed outages reported by ingest for the store role to record and repair."""
        return f"{self.bus_tag}:gaps"
