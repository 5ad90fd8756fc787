"""Typed configuration, parsed once from environment variables at start-up.

Every setting has one environment variable (``ENV_VARS``). A wrong or missing value
stops start-up with one line that names the variable (``ConfigError``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

# Development-only secrets: refused when OPSHUB_ENV=production.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"
DEV_DATA_KEYS = "ZGV2LW9ubHktZGF0YS1rZXktMDEyMzQ1Njc4OWFiY2Q="
DEV_BLIND_INDEX_KEY = "dev-only-blind-index-key-0123456789"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    env: Literal["dev", "test", "production"] = "dev"
    # None means: SQLite file under var_dir.
    database_url: str | None = None
    # None means: the launcher (or the test suite) starts a private redis-server.
    redis_url: str | None = None
    # PostgreSQL connection pool per process; 0 opens a connection per query or transaction
    # (the test suite uses 0: its HTTP test client runs the app on a loop of its own).
    database_pool_size: int = 20
    redis_prefix: str = "opshub:"
    # Realtime topics (history, epoch, pub/sub channel) spread over these Redis servers by consistent
    # hashing of the topic (realtime.shards), comma-separated. Empty: everything on REDIS_URL, as before.
    # arq's queues, rate limits, sessions and presence stay on REDIS_URL whatever this says.
    realtime_redis_urls: str = ""
    var_dir: str = "var"
    host: str = "127.0.0.1"
    port: int = 8000
    # The base of every link and callback the hub hands out (pass QR links, one-tap approvals,
    # Twilio callbacks, export downloads). Unset: derived from HOST and PORT (see public_link).
    public_url: str = ""
    jwt_secret: str = DEV_JWT_SECRET
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    # Browser sessions (app.web.sessions): ended after this long without a request, and at most this long after sign-in.
    session_idle_seconds: int = 7 * 24 * 3600
    session_max_seconds: int = 30 * 24 * 3600
    login_max_failures: int = 5
    login_window_seconds: int = 900
    # Failures per account from all addresses together: a slower backstop that addresses the account
    # has signed in from before (kept this many days) are not stopped by, so strangers cannot lock it.
    login_account_max_failures: int = 100
    login_account_window_seconds: int = 3600
    login_known_address_days: int = 90
    # Peers whose X-Forwarded-For is believed (uvicorn --forwarded-allow-ips): comma-separated addresses
    # or networks of the reverse proxies. Empty: no peer is, the TCP peer is the client.
    forwarded_allow_ips: str = ""
    # Personal-data exports and data-rights requests each person may start per window (429 beyond).
    privacy_requests_per_window: int = 20
    privacy_request_window_seconds: int = 3600
    max_request_body_bytes: int = 2 * 1024 * 1024
    # Multiplies every request rate limit (app.security.ratelimit); 0 turns them off.
    rate_limit_scale: float = 1.0
    # Uploaded photos (visitors, complaints). None means var_dir/uploads.
    upload_dir: str | None = None
    upload_max_bytes: int = 1536 * 1024
    # Personal-data export archives. None means var_dir/exports.
    export_dir: str | None = None
    # Report files built by export jobs (under export_dir/reports): their download link works this long,
    # then the file is deleted (app.reports.jobs).
    report_file_ttl_seconds: int = 24 * 3600
    # Comma-separated keys (32 bytes, url-safe base64, as Fernet's), newest first: the first encrypts, all decrypt.
    data_encryption_keys: str = DEV_DATA_KEYS
    blind_index_key: str = DEV_BLIND_INDEX_KEY
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # One JSON object per line on stderr; "text" is a human-readable line for a developer's terminal.
    log_format: Literal["json", "text"] = "json"
    # Bearer token a Prometheus scraper sends to GET /metrics; empty: only platform admins may read it.
    metrics_token: str = ""
    # Providers. A *_base_url points the real SDK at another server (the local fakes in dev/tests).
    twilio_account_sid: str = "ACfake0000000000000000000000000000"
    twilio_auth_token: str = "fake-twilio-auth-token"
    twilio_base_url: str | None = None
    twilio_sms_from: str = "OPSHUB"
    twilio_whatsapp_from: str = "whatsapp:+14155238886"
    # Approved WhatsApp template (ContentSid) used outside the 24-hour session window.
    whatsapp_template_sid: str | None = None
    fcm_project_id: str = "opshub-dev"
    fcm_base_url: str | None = None
    fcm_access_token: str | None = None
    fcm_credentials_file: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_from: str = "opshub <noreply@opshub.test>"
    # Sends per second per channel, shared by all workers through Redis; 0 = unlimited.
    notify_rate_sms: float = 1.0
    notify_rate_whatsapp: float = 20.0
    notify_rate_push: float = 0.0
    notify_rate_email: float = 10.0
    # A claimed send older than this is "in doubt" and is reconciled before any retry.
    notify_claim_lease_seconds: int = 120
    # Workers sending one bulk notification's channel at once (each claims rows of its own).
    notify_senders_per_channel: int = 2
    # People per part of an audience: a part is one job's expansion, and parts go to every worker.
    notify_expansion_part_size: int = 20_000
    # A visitor ladder rung started this long ago and not finished (its worker died) is taken again.
    visitor_rung_lease_seconds: int = 30
    notify_policy_version: str = "2026-11"
    # Payments (Razorpay): the key pair of the account and the secret its webhooks are signed with.
    razorpay_key_id: str = "rzp_test_fakeKey000000"
    razorpay_key_secret: str = "fake-razorpay-key-secret"
    razorpay_webhook_secret: str = "fake-razorpay-webhook-secret"
    razorpay_base_url: str | None = None
    # Where the payer's browser opens Razorpay's hosted checkout (None: the API's base URL).
    razorpay_checkout_url: str | None = None
    # `make run` starts the local provider fakes unless provider URLs are given.
    start_fakes: bool = True

    def __post_init__(self) -> None:
        if not self.public_url:
            # Frozen struct: the derived value is set once, at construction.
            msgspec.structs.force_setattr(self, "public_url", derived_public_url(self.host, self.port))

    def public_link(self, path: str) -> str:
        """The absolute URL of one of our paths: the one place links and callbacks are built."""
        return self.public_url.rstrip("/") + "/" + path.lstrip("/")

    @property
    def upload_path(self) -> Path:
        return Path(self.upload_dir) if self.upload_dir else Path(self.var_dir) / "uploads"

    @property
    def export_path(self) -> Path:
        return Path(self.export_dir) if self.export_dir else Path(self.var_dir) / "exports"

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry Secure outside local development (in production, or whenever served over TLS)."""
        return self.env == "production" or self.public_url.startswith("https://")

    @property
    def sqlite_path(self) -> Path:
        return Path(self.var_dir) / "opshub.sqlite"

    @property
    def is_postgres(self) -> bool:
        return bool(self.database_url and self.database_url.startswith(("postgres://", "postgresql://")))

    @property
    def realtime_shard_urls(self) -> tuple[str, ...]:
        """The realtime shards in the order given (order does not matter to the hash ring); () = REDIS_URL."""
        return tuple(part.strip() for part in self.realtime_redis_urls.split(",") if part.strip())


def derived_public_url(host: str, port: int) -> str:
    """http://HOST:PORT, with a wildcard bind address replaced by loopback (it is no address to link to)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


# Field name -> environment variable. Kept explicit so `.env.example` and errors agree.
ENV_VARS: dict[str, str] = {
    "env": "OPSHUB_ENV",
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "database_pool_size": "OPSHUB_DATABASE_POOL_SIZE",
    "redis_prefix": "OPSHUB_REDIS_PREFIX",
    "realtime_redis_urls": "REALTIME_REDIS_URLS",
    "var_dir": "OPSHUB_VAR_DIR",
    "host": "HOST",
    "port": "PORT",
    "public_url": "OPSHUB_PUBLIC_URL",
    "jwt_secret": "OPSHUB_JWT_SECRET",
    "access_token_ttl_seconds": "OPSHUB_ACCESS_TOKEN_TTL_SECONDS",
    "refresh_token_ttl_seconds": "OPSHUB_REFRESH_TOKEN_TTL_SECONDS",
    "session_idle_seconds": "OPSHUB_SESSION_IDLE_SECONDS",
    "session_max_seconds": "OPSHUB_SESSION_MAX_SECONDS",
    "login_max_failures": "OPSHUB_LOGIN_MAX_FAILURES",
    "login_window_seconds": "OPSHUB_LOGIN_WINDOW_SECONDS",
    "login_account_max_failures": "OPSHUB_LOGIN_ACCOUNT_MAX_FAILURES",
    "login_account_window_seconds": "OPSHUB_LOGIN_ACCOUNT_WINDOW_SECONDS",
    "login_known_address_days": "OPSHUB_LOGIN_KNOWN_ADDRESS_DAYS",
    "forwarded_allow_ips": "OPSHUB_FORWARDED_ALLOW_IPS",
    "privacy_requests_per_window": "OPSHUB_PRIVACY_REQUESTS_PER_WINDOW",
    "privacy_request_window_seconds": "OPSHUB_PRIVACY_REQUEST_WINDOW_SECONDS",
    "max_request_body_bytes": "OPSHUB_MAX_REQUEST_BODY_BYTES",
    "rate_limit_scale": "OPSHUB_RATE_LIMIT_SCALE",
    "upload_dir": "OPSHUB_UPLOAD_DIR",
    "upload_max_bytes": "OPSHUB_UPLOAD_MAX_BYTES",
    "export_dir": "OPSHUB_EXPORT_DIR",
    "report_file_ttl_seconds": "OPSHUB_REPORT_FILE_TTL_SECONDS",
    "data_encryption_keys": "OPSHUB_DATA_ENCRYPTION_KEYS",
    "blind_index_key": "OPSHUB_BLIND_INDEX_KEY",
    "log_level": "OPSHUB_LOG_LEVEL",
    "log_format": "OPSHUB_LOG_FORMAT",
    "metrics_token": "OPSHUB_METRICS_TOKEN",
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_base_url": "TWILIO_BASE_URL",
    "twilio_sms_from": "TWILIO_SMS_FROM",
    "twilio_whatsapp_from": "TWILIO_WHATSAPP_FROM",
    "whatsapp_template_sid": "OPSHUB_WHATSAPP_TEMPLATE_SID",
    "fcm_project_id": "FCM_PROJECT_ID",
    "fcm_base_url": "FCM_BASE_URL",
    "fcm_access_token": "FCM_ACCESS_TOKEN",
    "fcm_credentials_file": "GOOGLE_APPLICATION_CREDENTIALS",
    "smtp_host": "SMTP_HOST",
    "smtp_port": "SMTP_PORT",
    "smtp_from": "SMTP_FROM",
    "notify_rate_sms": "OPSHUB_NOTIFY_RATE_SMS",
    "notify_rate_whatsapp": "OPSHUB_NOTIFY_RATE_WHATSAPP",
    "notify_rate_push": "OPSHUB_NOTIFY_RATE_PUSH",
    "notify_rate_email": "OPSHUB_NOTIFY_RATE_EMAIL",
    "notify_claim_lease_seconds": "OPSHUB_NOTIFY_CLAIM_LEASE_SECONDS",
    "notify_senders_per_channel": "OPSHUB_NOTIFY_SENDERS_PER_CHANNEL",
    "notify_expansion_part_size": "OPSHUB_NOTIFY_PART_SIZE",
    "visitor_rung_lease_seconds": "OPSHUB_VISITOR_RUNG_LEASE_SECONDS",
    "notify_policy_version": "OPSHUB_NOTIFY_POLICY_VERSION",
    "razorpay_key_id": "RAZORPAY_KEY_ID",
    "razorpay_key_secret": "RAZORPAY_KEY_SECRET",
    "razorpay_webhook_secret": "RAZORPAY_WEBHOOK_SECRET",
    "razorpay_base_url": "RAZORPAY_BASE_URL",
    "razorpay_checkout_url": "RAZORPAY_CHECKOUT_URL",
    "start_fakes": "OPSHUB_START_FAKES",
}


class ConfigError(SystemExit):
    """Raised at start-up; its message is the one line shown to the operator."""

    def __init__(self, message: str) -> None:
        super().__init__(f"opshub: configuration error: {message}")
        self.message = message


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    raw = {field: environ[var] for field, var in ENV_VARS.items() if environ.get(var, "") != ""}
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    _check_semantics(settings)
    return settings


def _explain(exc: msgspec.ValidationError) -> str:
    message = str(exc)
    # msgspec reports "... - at `$.field`"; name the variable instead of the field.
    if " - at `$." in message:
        text, _, path = message.rpartition(" - at `$.")
        field = path.rstrip("`").split(".")[0].split("[")[0]
        var = ENV_VARS.get(field, field)
        return f"{var}: {text}"
    return message


def _check_semantics(settings: Settings) -> None:
    if settings.database_url and not (settings.is_postgres or settings.database_url.startswith("sqlite://")):
        raise ConfigError("DATABASE_URL: must start with postgresql:// or sqlite://")
    if settings.redis_url and not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL: must start with redis://, rediss:// or unix://")
    shard_urls = settings.realtime_shard_urls
    for url in shard_urls:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"REALTIME_REDIS_URLS: {url!r} must start with redis://, rediss:// or unix://")
    if len(set(shard_urls)) != len(shard_urls):
        raise ConfigError("REALTIME_REDIS_URLS: a server is listed twice")
    if not 1 <= settings.port <= 65535:
        raise ConfigError("PORT: must be between 1 and 65535")
    if not settings.public_url.startswith(("http://", "https://")):
        raise ConfigError("OPSHUB_PUBLIC_URL: must start with http:// or https://")
    for field in (
        "access_token_ttl_seconds",
        "refresh_token_ttl_seconds",
        "login_window_seconds",
        "login_account_window_seconds",
        "login_known_address_days",
        "privacy_request_window_seconds",
        "session_idle_seconds",
        "session_max_seconds",
        "report_file_ttl_seconds",
    ):
        if getattr(settings, field) <= 0:
            raise ConfigError(f"{ENV_VARS[field]}: must be a positive number of seconds")
    if settings.database_pool_size < 0:
        raise ConfigError("OPSHUB_DATABASE_POOL_SIZE: must be 0 or more")
    if settings.rate_limit_scale < 0:
        raise ConfigError("OPSHUB_RATE_LIMIT_SCALE: must be 0 (off) or more")
    if settings.login_max_failures < 1:
        raise ConfigError("OPSHUB_LOGIN_MAX_FAILURES: must be at least 1")
    if settings.login_account_max_failures < settings.login_max_failures:
        raise ConfigError("OPSHUB_LOGIN_ACCOUNT_MAX_FAILURES: must be at least OPSHUB_LOGIN_MAX_FAILURES")
    for entry in filter(None, (part.strip() for part in settings.forwarded_allow_ips.split(","))):
        import ipaddress  # local: keeps config import-light

        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            # uvicorn would take a typo as a literal host name and silently trust nothing (or the wrong peer).
            raise ConfigError(f"OPSHUB_FORWARDED_ALLOW_IPS: {entry!r} is not an address or network") from None
    if settings.privacy_requests_per_window < 1:
        raise ConfigError("OPSHUB_PRIVACY_REQUESTS_PER_WINDOW: must be at least 1")
    if settings.max_request_body_bytes < 1024:
        raise ConfigError("OPSHUB_MAX_REQUEST_BODY_BYTES: must be at least 1024")
    if not 1024 <= settings.upload_max_bytes < settings.max_request_body_bytes:
        raise ConfigError("OPSHUB_UPLOAD_MAX_BYTES: must be at least 1024 and below OPSHUB_MAX_REQUEST_BODY_BYTES")
    if settings.metrics_token and len(settings.metrics_token) < 32:
        raise ConfigError("OPSHUB_METRICS_TOKEN: must be at least 32 characters (or empty: platform admins only)")
    if len(settings.jwt_secret) < 32:
        raise ConfigError("OPSHUB_JWT_SECRET: must be at least 32 characters")
    from app.security.crypto import parse_fernet_keys  # local: keeps config import-light

    try:
        parse_fernet_keys(settings.data_encryption_keys)
    except ValueError as exc:
        raise ConfigError(f"OPSHUB_DATA_ENCRYPTION_KEYS: {exc}") from None
    if not 100 <= settings.notify_expansion_part_size <= 1_000_000:
        raise ConfigError("OPSHUB_NOTIFY_PART_SIZE: must be between 100 and 1000000")
    if not 1 <= settings.notify_senders_per_channel <= 64:
        raise ConfigError("OPSHUB_NOTIFY_SENDERS_PER_CHANNEL: must be between 1 and 64")
    if settings.notify_claim_lease_seconds < 1:
        raise ConfigError("OPSHUB_NOTIFY_CLAIM_LEASE_SECONDS: must be at least 1")
    if settings.visitor_rung_lease_seconds < 1:
        raise ConfigError("OPSHUB_VISITOR_RUNG_LEASE_SECONDS: must be at least 1")
    if settings.env == "production":
        if settings.jwt_secret == DEV_JWT_SECRET:
            raise ConfigError("OPSHUB_JWT_SECRET: must be set in production (the dev default is refused)")
        if DEV_DATA_KEYS in settings.data_encryption_keys.split(","):
            raise ConfigError("OPSHUB_DATA_ENCRYPTION_KEYS: the dev key is refused in production")
        if settings.blind_index_key == DEV_BLIND_INDEX_KEY:
            raise ConfigError("OPSHUB_BLIND_INDEX_KEY: must be set in production")


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def reset_settings_cache() -> None:
    global _settings
    _settings = None
