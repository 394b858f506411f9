"""The one typed settings object, built once in the composition root and passed down.

Every field can be set by an environment variable ``GATEWAY_<FIELD>``; command
line flags of ``ocpi-gateway serve`` override the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.storage.redis_batch import SentinelTarget

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
SENTINEL_PORT = 26379  # Sentinel's default port


class ConfigError(Exception):
    """A setting the gateway cannot start with: ``fields`` are the :class:`Settings`
    fields concerned, ``problem`` what is wrong (the command line names each field by
    its flag or ``GATEWAY_*`` variable)."""

    def __init__(self, fields: str | tuple[str, ...], problem: str) -> None:
        self.fields = (fields,) if isinstance(fields, str) else fields
        self.problem = problem
        super().__init__(f"{', '.join(self.fields)}: {problem}")


class PartySettings(BaseModel):
    """A CPO party hosted on the gateway (its chargers connect over OCPP)."""

    country_code: str = Field(min_length=2, max_length=2, pattern="^[A-Z]{2}$")
    party_id: str = Field(min_length=3, max_length=3, pattern="^[A-Z0-9]{3}$")
    name: str = Field(min_length=1, max_length=100)
    website: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8180, ge=0, le=65535)
    # A reconnect storm (a process of the cluster gone, 10,000 chargers at once) overflows
    # a short accept queue, and every refused SYN costs its charger a TCP retry of 1, 3,
    # 7, 15 s... The kernel caps it at net.core.somaxconn (4096 on current Linux).
    listen_backlog: int = Field(
        default=4096, ge=1, le=65535, description="length of the listening socket's accept queue"
    )
    data_dir: Path = Path("./data")
    public_url: str | None = Field(
        default=None, description="base URL the gateway tells partners about"
    )
    # At least 16 characters: an empty token would let "Authorization: Bearer " in.
    admin_token: SecretStr | None = Field(
        default=None, description="admin API bearer token; generated at first start if unset"
    )
    metrics: bool = Field(
        default=True,
        description="count and serve GET /metrics (false: no metrics at all; the benchmark "
        "measures their cost so)",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer token GET /metrics requires; unset: /metrics is unauthenticated",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s), comma-separated, newest first, encrypting the tokens the "
        "gateway uses to call partners; unset: the data dir's secret_key file, generated at "
        "first start with SQLite (required with Redis)",
    )
    redis_url: str | None = Field(default=None, description="use Redis storage instead of SQLite")
    redis_prefix: str = Field(default="gw:", description="prefix of every Redis key")
    # Redis through Sentinel (README "Redis in production"): the master's address is
    # asked from the Sentinels at every connection, so a failover moves the gateway
    # to the new master. GATEWAY_REDIS_URL, optional then, gives only the password,
    # database and TLS options (no host), e.g. redis://:secret@/0.
    redis_sentinels: str | None = Field(
        default=None,
        description="Redis through Sentinel: the Sentinels' addresses, host:port comma-separated"
        " (port 26379 when left out)",
    )
    redis_sentinel_service: str | None = Field(
        default=None,
        description="the name the Sentinels monitor the master under (sentinel monitor NAME ...)",
    )
    redis_sentinel_password: SecretStr | None = Field(
        default=None,
        description="the Sentinels' own password (their requirepass); the master's is in the URL",
    )
    redis_sentinel_tls: bool = Field(
        default=False, description="TLS to the Sentinels too, with the URL's ssl_* options"
    )
    lease_seconds: float = Field(
        default=15.0,
        ge=0.5,
        le=3600,
        description="TTL of the leases under which the once-per-cluster background jobs run:"
        " a survivor takes a dead process's jobs over within about this long",
    )
    storage_retry_seconds: float = Field(
        default=5.0,
        ge=0,
        description="seconds a Redis command waits for a lost connection to come back"
        " (then the CALL is answered InternalError); keep it below the chargers' call timeout",
    )

    auto_register: bool = Field(
        default=False, description="accept unknown charge point ids and register them"
    )
    heartbeat_interval: int = Field(default=300, ge=10, description="seconds, sent at boot")
    heartbeat_grace: float = Field(
        default=2.5, gt=1, description="offline after this many heartbeat intervals of silence"
    )
    call_timeout: float = Field(default=30.0, gt=0, description="seconds to wait for a charger")
    max_frame_bytes: int = Field(default=65536, ge=1024)
    # Per source address; chargers that authenticate (password, client certificate)
    # are never counted. 0: no bound.
    unauthenticated_per_minute: int = Field(
        default=120, ge=0, description="unauthenticated WebSocket upgrade attempts per address"
    )
    unauthenticated_per_address: int = Field(
        default=100, ge=0, description="unauthenticated connections open at once per address"
    )

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Profile 3 with OCPP 1.6 fleets whose certificates carry the charge point id
    # instead of the serial number (2.0.1 A00.FR.404 wants the serial number).
    tls_cn_is_charger_id: bool = False
    # Charger certificates (gateway.csms.certificates): the operator's CA signs the CSRs
    # chargers send (SignCertificate), or an external CA does; renewal before expiry.
    certificate_ca_cert: Path | None = Field(
        default=None, description="the CA certificate (PEM) that signs charger certificates"
    )
    certificate_ca_key: Path | None = Field(
        default=None, description="the CA's private key (PEM, unencrypted)"
    )
    certificate_validity_days: int = Field(
        default=365, ge=1, le=3650, description="days a charger certificate the CA signs is valid"
    )
    certificate_organization: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the O every charger's CSR must carry (2.0.1 OrganizationName, 1.6 CpoName)",
    )
    certificate_external_ca_url: str | None = Field(
        default=None, description="an external CA's signing endpoint (POST the CSR, get the chain)"
    )
    certificate_external_ca_token: SecretStr | None = Field(
        default=None, description="bearer token for the external CA"
    )
    certificate_renew_days: float = Field(
        default=30,
        gt=0,
        description="a charger certificate expiring within this many days is renewed",
    )
    certificate_check_interval: float = Field(
        default=3600, gt=0, description="seconds between looks for certificates due for renewal"
    )

    # The CPO parties this gateway hosts, e.g. GATEWAY_PARTIES='[{"country_code": "NL",
    # "party_id": "ABC", "name": "Example CPO"}]'. Every location belongs to one of them.
    parties: list[PartySettings] = Field(
        default_factory=lambda: [
            PartySettings(country_code="ZZ", party_id="GWY", name="ocpi-gateway")
        ],
        min_length=1,
    )
    ocpi_timeout: float = Field(default=15.0, gt=0, description="seconds per partner request")
    request_read_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds the whole body of an OCPI or admin request may take to arrive "
        "(slower: 408 and the connection closed)",
    )
    outbox_poll_interval: float = Field(
        default=5.0, gt=0, description="seconds between looks for pushes due for a retry"
    )
    outbox_retention_days: float = Field(
        default=7, gt=0, description="days delivered partner pushes are kept before deletion"
    )
    # A year and a month: last year's reports stay whole (README "Reports").
    status_history_days: float = Field(
        default=400,
        gt=0,
        description="days the status history (uptime and fault reports) is kept",
    )
    outbox_retry_cap: float = Field(
        default=600.0, ge=2, description="longest wait, in seconds, between two push attempts"
    )
    outbox_give_up_hours: float = Field(
        default=72.0,
        gt=0,
        description="a push still failing this long after it was made waits, FAILED, for the "
        "operator (replay or discard in the admin API)",
    )
    session_retry_interval: float = Field(
        default=60.0,
        gt=0,
        description="seconds between retries of the session/CDR updates that failed",
    )
    realtime_auth_timeout: float = Field(
        default=5.0, gt=0, description="seconds an eMSP gets to answer a real-time authorization"
    )

    # The gateway as a roaming hub (/ocpi/hub): its own party and the still-alive check.
    hub_country_code: str = Field(default="ZZ", pattern="^[A-Z]{2}$")
    hub_party_id: str = Field(default="HUB", pattern="^[A-Z0-9]{3}$")
    hub_name: str = Field(default="ocpi-gateway hub", min_length=1, max_length=100)
    hub_check_interval: float = Field(
        default=60.0, gt=0, description="seconds between still-alive checks of hub platforms"
    )
    hub_silence: float = Field(
        default=300.0, gt=0, description="seconds of silence before a platform is probed"
    )
    hub_session_index_days: float = Field(
        default=90.0,
        gt=0,
        description="days the hub remembers whose session it routed (open routing)",
    )
    # Smart charging (gateway.smart, gateway.charging, the OCPI ChargingProfiles receiver).
    site_tick: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="seconds between load management's looks at limits starting or ending",
    )
    site_resync_interval: float = Field(
        default=30.0, gt=0, description="seconds between load management's reloads from storage"
    )
    site_retry_interval: float = Field(
        default=30.0,
        gt=0,
        description="seconds before a charger that refused or did not answer a limit is "
        "tried again",
    )
    reconnect_settle: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="seconds after a reconnect without BootNotification before stored "
        "profiles and site limits are sent",
    )
    profile_report_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds a 2.0.1 charger gets to send the ReportChargingProfiles it announced",
    )
    ocpi_profile_min_interval: float = Field(
        default=5.0,
        ge=0,
        description="seconds between an eMSP's charging profile PUTs for one session "
        "(sooner: TOO_OFTEN; 0: no bound)",
    )
    # Local authorization lists (gateway.locallist); each charger's own setting wins.
    local_list: bool = Field(
        default=False,
        description="send chargers local authorization lists (on/off; per charger: local_list)",
    )
    local_list_max_entries: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="tokens on a charger's local list at most (the charger's own maximum too)",
    )
    local_list_interval: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="seconds between looks for token changes to send as differential updates",
    )
    # Demand response: the gateway's OpenADR 2.0b VEN (gateway.demand), off without a VTN.
    openadr_vtn_url: str | None = Field(
        default=None, description="the grid operator's VTN (OpenADR 2.0b simple HTTP) URL"
    )
    openadr_ven_name: str = Field(default="ocpi-gateway", min_length=1, max_length=100)
    openadr_cert: Path | None = Field(default=None, description="the VEN's certificate (PEM)")
    openadr_key: Path | None = Field(default=None, description="the VEN's private key (PEM)")
    openadr_ca_file: Path | None = Field(default=None, description="CA bundle of the VTN")
    openadr_vtn_fingerprint: str | None = Field(
        default=None, description="the VTN certificate's fingerprint, to check its signatures"
    )
    openadr_report_interval: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="seconds between the VEN's power reports per site (and looks for new sites)",
    )
    openadr_simple_levels: str = Field(
        default="0.75,0.5,0.25",
        pattern=r"^\s*(0(\.\d+)?|1(\.0+)?)\s*(,\s*(0(\.\d+)?|1(\.0+)?)\s*){0,2}$",
        description="share of a site's capacity for SIMPLE levels 1, 2, 3 (fractions 0 to 1)",
    )
    hub_open_get_all: bool = Field(
        default=False,
        description="treat a GET list without OCPI-to-* headers as a GET All via the hub",
    )

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="log lines as text or as JSON objects, one per line"
    )
    # The message trail (gateway.trail): every OCPP frame and OCPI request and response.
    trail: bool = Field(default=True, description="keep the message trail")
    trail_bodies: bool = Field(
        default=False, description="keep each frame's and OCPI body's text in the trail"
    )
    trail_mask_tokens: bool = Field(
        default=True,
        description="in kept bodies, mask token ids (OCPP idTag, idToken; OCPI token uid,"
        " contract_id) but their last 4 characters",
    )
    trail_body_max_bytes: int = Field(
        default=16384, ge=256, description="longer bodies are kept cut to this many bytes"
    )
    trail_days: float = Field(default=7, gt=0, description="days the trail is kept")
    trail_max_entries: int = Field(
        default=1_000_000, ge=100, description="entries the trail keeps at most (oldest go)"
    )
    trail_queue_entries: int = Field(
        default=50_000,
        ge=100,
        description="entries waiting to be written at most; beyond, new ones are dropped and"
        " counted (never a charger held up)",
    )
    trail_flush_interval: float = Field(
        default=0.5, gt=0, le=60, description="seconds between writes of the trail's queue"
    )
    # Large: an SQLite batch of 10,000 costs about half as much per entry as one of 1,000
    # (tests/bench/README.md, the message trail).
    trail_flush_entries: int = Field(
        default=10_000, ge=1, description="a queue this long is written at once"
    )
    # Processes: a writer thread and the event loop traded the interpreter's lock
    # thousands of times a second under load (tests/bench/README.md, the eleventh round).
    # SQLite only: on Redis both are written from the event loop.
    writer_processes: bool = Field(
        default=True,
        description="on SQLite, write the message trail and the status history from"
        " processes of their own (false: from threads of the gateway's, which cost more CPU"
        " under load)",
    )
    # The 2.0.1/2.1 device model (gateway.csms.device_model).
    device_alerts_kept: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="NotifyEvent alerts kept per charger (the oldest go first)",
    )

    @field_validator("admin_token", "metrics_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("should be at least 16 characters")
        return value

    @field_validator("redis_sentinels", "redis_sentinel_service")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        # compose's ${VAR:-} and an empty ConfigMap entry give "": not set.
        return value if value is None or value.strip() else None

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.upper() not in _LOG_LEVELS:
            raise ValueError(f"should be one of {', '.join(_LOG_LEVELS)}")
        return value.upper()

    @property
    def uses_redis(self) -> bool:
        """Redis storage (a URL, or Sentinels), else SQLite in the data dir."""
        return self.redis_url is not None or self.redis_sentinels is not None

    def redis_sentinel(self) -> SentinelTarget | None:
        """The Sentinels to ask for the Redis master, or None without Sentinel;
        :class:`ConfigError` for Sentinel settings the gateway cannot start with."""
        if self.redis_sentinels is None:
            if self.redis_sentinel_service is not None:
                raise ConfigError(
                    "redis_sentinels", "required with a Sentinel service: host:port,host:port..."
                )
            if self.redis_sentinel_password is not None:
                raise ConfigError("redis_sentinel_password", "needs Sentinels as well")
            if self.redis_sentinel_tls:
                raise ConfigError("redis_sentinel_tls", "needs Sentinels as well")
            return None
        addresses = tuple(_sentinel_address(item) for item in self.redis_sentinels.split(","))
        if self.redis_sentinel_service is None:
            raise ConfigError(
                "redis_sentinel_service",
                "required with Sentinels: the name they monitor the master under",
            )
        if self.redis_url is not None:
            try:
                url = urlsplit(self.redis_url)
                has_address = bool(url.hostname) or url.port is not None
            except ValueError:
                raise ConfigError("redis_url", "not a valid URL") from None
            if url.scheme not in ("redis", "rediss") or has_address:
                # Never echoed: the URL may hold the password.
                raise ConfigError(
                    "redis_url",
                    "with Sentinels it gives no host or port (the Sentinels name the master):"
                    " redis[s]://[[user]:password@]/db, or leave it unset",
                )
        password = self.redis_sentinel_password
        return SentinelTarget(
            addresses=addresses,
            service=self.redis_sentinel_service.strip(),
            password=password.get_secret_value() if password is not None else None,
            tls=self.redis_sentinel_tls,
        )

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"


def _sentinel_address(item: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[ipv6]:port`` (Sentinel's port 26379 by default)."""
    text = item.strip()
    if not text:
        raise ConfigError("redis_sentinels", "an empty address (two commas, or one at an end)")
    host: str = text
    port: int | None = SENTINEL_PORT
    if text.startswith("["):  # [::1]:26379
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                host = ""
            port = _port(rest[1:])
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        port = _port(rest)
    if not host or port is None or any(c.isspace() or c in "/@[]" for c in host):
        raise ConfigError("redis_sentinels", f"{text!r} is not host:port")
    return host, port


def _port(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None
