"""Settings, read from the environment. Every variable is documented in docs/configuration.md.

Temporal connection settings follow temporalio's own conventions (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS_*``, ``TEMPORAL_PROFILE`` and
the TOML config file), read with ``temporalio.envconfig``. The event store takes
eventsourcing's own variables (``PERSISTENCE_MODULE``, ``SQLITE_DBNAME``, ``POSTGRES_*``).
bulkorder's own variables start with ``BULKORDER_``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from bulkorder.domain.identity import OrderIdentity
from bulkorder.identity_secret import IdentitySettings
from bulkorder.domain.application import Orders
from bulkorder.encryption import EncryptionSettings, blob_protection, event_protection
from bulkorder.storage.encryption.protection import BlobProtection
from bulkorder.keyring_file import KEYRING_FILE
from bulkorder.seals import SealSettings
from bulkorder.tracing import TracingSettings
from bulkorder.domain.errors import BulkorderError
from bulkorder.storage.claim_check import DEFAULT_CACHE_BYTES, DEFAULT_THRESHOLD, MIN_THRESHOLD
from bulkorder.storage.config import BlobStoreConfig, EventStoreConfig
from bulkorder.importer.sources import DEFAULT_MAX_LINE_BYTES
from bulkorder.workflows.messages import OrderLimits
from bulkorder.workflows.worker import DEFAULT_TASK_QUEUE

DEFAULT_CODEC_SERVER_MAX_BODY_BYTES = 8 * 2**20
DEFAULT_CODEC_SERVER_MAX_CONCURRENCY = 8
#: Long enough for a record activity (one transaction) or a few batches of fulfillment.
DEFAULT_GRACEFUL_SHUTDOWN_SECONDS = 30


class SettingsError(BulkorderError, ValueError):
    """A setting is missing or malformed; the message names the variable."""


# BULKORDER_ variable -> OrderLimits field it sets.
_LIMIT_VARIABLES = {
    "BULKORDER_MAX_HISTORY_EVENTS": "max_history_events",
    "BULKORDER_MAX_HISTORY_BYTES": "max_history_bytes",
    "BULKORDER_MAX_SIGNALS": "max_signals",
    "BULKORDER_MAX_UPDATES": "max_updates",
    "BULKORDER_MAX_REFS_PER_RECORD": "max_refs_per_record",
    "BULKORDER_MAX_CARRIED_REFS": "max_carried_refs",
    "BULKORDER_FULFILLMENT_CONCURRENCY": "fulfillment_concurrency",
    "BULKORDER_FAILED_HOLD_SECONDS": "failed_hold_seconds",
}


#: temporalio connect options shown as they are in a repr; every other one (api_key, tls
#: with its private key, rpc_metadata with its headers, ...) is shown as ``***``.
_SHOWN_CONNECT_OPTIONS = frozenset({"target_host", "namespace", "identity", "lazy", "runtime", "default_workflow_query_reject_condition"})
REDACTED = "***"


def redacted_connect_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` for logs and reprs: option names kept, secret values replaced."""
    return {
        name: value if name in _SHOWN_CONNECT_OPTIONS or value is None or isinstance(value, bool) else REDACTED
        for name, value in config.items()
    }


@dataclass(frozen=True, repr=False)
class TemporalSettings:
    """Where Temporal is. ``address`` None means: use the embedded dev server."""

    address: str | None = None
    namespace: str = "default"
    connect_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.address is None

    def __repr__(self) -> str:
        return (
            f"TemporalSettings(address={self.address!r}, namespace={self.namespace!r}, "
            f"connect_config={redacted_connect_config(self.connect_config)!r})"
        )


@dataclass(frozen=True, repr=False)
class ClaimCheckSettings:
    """The claim-check payload codec (docs/claim_check.md) and its codec server."""

    threshold: int = DEFAULT_THRESHOLD
    cache_bytes: int = DEFAULT_CACHE_BYTES
    codec_server_token: str | None = None
    codec_server_cors_origins: tuple[str, ...] = ()
    #: Names (besides its own address) the codec server answers in the Host header.
    codec_server_allowed_hosts: tuple[str, ...] = ()
    codec_server_max_body_bytes: int = DEFAULT_CODEC_SERVER_MAX_BODY_BYTES
    codec_server_max_concurrency: int = DEFAULT_CODEC_SERVER_MAX_CONCURRENCY

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.codec_server_token is not None:
            shown["codec_server_token"] = REDACTED
        return "ClaimCheckSettings(" + ", ".join(f"{name}={value!r}" for name, value in shown.items()) + ")"


@dataclass(frozen=True)
class Settings:
    home: Path
    temporal: TemporalSettings
    task_queue: str
    blob_store: BlobStoreConfig
    event_store: EventStoreConfig
    limits: OrderLimits
    batch_size: int
    claim_check: ClaimCheckSettings = field(default_factory=ClaimCheckSettings)
    #: The ref-seal secret (bulkorder.seals); never shown.
    seal: SealSettings = field(default_factory=SealSettings, repr=False)
    #: The identity secret (bulkorder.identity_secret): never shown, never rotated.
    identity: IdentitySettings = field(default_factory=IdentitySettings, repr=False)
    #: Longest line, CSV row or JSON element of an input file (BULKORDER_MAX_LINE_BYTES).
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    #: OpenTelemetry tracing (bulkorder.tracing): off unless configured.
    tracing: TracingSettings = field(default_factory=TracingSettings)
    #: Seconds a stopping worker gives in-flight activities (BULKORDER_GRACEFUL_SHUTDOWN_SECONDS).
    graceful_shutdown_seconds: int = DEFAULT_GRACEFUL_SHUTDOWN_SECONDS
    #: ``bulkorder gc``'s default grace period, seconds (BULKORDER_GC_GRACE_SECONDS).
    gc_grace_seconds: int = 24 * 3600
    #: A write lease older than this protects nothing (BULKORDER_GC_LEASE_TTL_SECONDS).
    gc_lease_ttl_seconds: int = 3600

    #: Encryption at rest (bulkorder.encryption): keyring or KMS; on unless turned off.
    encryption: EncryptionSettings | None = None
    #: Run the worker's workflow code in temporalio's sandbox (BULKORDER_WORKFLOW_SANDBOX).
    #: On by default, as temporalio has it: it fails a task that calls a non-deterministic
    #: function. ``off`` saves the module's re-import for every new run (3-5 ms of the
    #: worker's CPU per create, docs/benchmarks.md); the tests always run it sandboxed.
    workflow_sandbox: bool = True

    def __post_init__(self) -> None:
        if self.encryption is None:
            object.__setattr__(self, "encryption", EncryptionSettings(keyring_path=self.home / KEYRING_FILE))

    @property
    def encryption_settings(self) -> EncryptionSettings:
        assert self.encryption is not None  # set in __post_init__
        return self.encryption

    def blob_protection(self) -> BlobProtection:
        """How this deployment seals blobs (one cache of data keys per process)."""
        return blob_protection(self.encryption_settings, self.blob_store, self.order_identity())

    def open_orders(self) -> Orders:
        """The event store, its events encrypted at rest, its orders named with this
        deployment's identity secret (close it when done)."""
        return self.event_store.open_orders(
            event_protection(self.encryption_settings, self.blob_store, self.order_identity()),
            identity=self.order_identity(),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("BULKORDER_HOME", ".bulkorder")).expanduser()
        return cls(
            home=home,
            temporal=_temporal_settings(env),
            task_queue=env.get("BULKORDER_TASK_QUEUE", DEFAULT_TASK_QUEUE) or DEFAULT_TASK_QUEUE,
            blob_store=_blob_store_config(env, home),
            event_store=EventStoreConfig.from_env(env, default_sqlite_path=home / "events.sqlite"),
            limits=_limits(env),
            batch_size=_positive_int(env, "BULKORDER_BATCH_SIZE", 5_000),
            claim_check=_claim_check_settings(env),
            seal=_seal_settings(env),
            identity=_identity_settings(env),
            max_line_bytes=_positive_int(env, "BULKORDER_MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES),
            tracing=TracingSettings.from_env(env),
            graceful_shutdown_seconds=_non_negative_int(
                env, "BULKORDER_GRACEFUL_SHUTDOWN_SECONDS", DEFAULT_GRACEFUL_SHUTDOWN_SECONDS
            ),
            gc_grace_seconds=_non_negative_int(env, "BULKORDER_GC_GRACE_SECONDS", 24 * 3600),
            gc_lease_ttl_seconds=_positive_int(env, "BULKORDER_GC_LEASE_TTL_SECONDS", 3600),
            encryption=_encryption_settings(env, home),
            workflow_sandbox=_switch(env, "BULKORDER_WORKFLOW_SANDBOX", True),
        )

    def order_identity(self) -> OrderIdentity:
        """The keyed hash that names orders in Temporal and the event store (never rotated)."""
        return self.identity.identity(self.home)

    def with_limits(self, **changes: int) -> Settings:
        return replace(self, limits=replace(self.limits, **changes))

    def describe(self) -> dict[str, str]:
        """Human-readable, secret-free view of the settings (for ``bulkorder dev``)."""
        return {
            "temporal": "embedded dev server" if self.temporal.embedded else f"{self.temporal.address} "
            f"(namespace {self.temporal.namespace})",
            "task queue": self.task_queue,
            "blob store": self.blob_store.describe(),
            "event store": self.event_store.describe(),
            "encryption": self.encryption_settings.describe(),
            "tracing": self.tracing.describe(),
            "claim check": f"payloads over {self.claim_check.threshold:,} bytes go to the blob store "
            f"(cache {self.claim_check.cache_bytes / 2**20:,.0f} MiB)",
        }


def _temporal_settings(env: Mapping[str, str]) -> TemporalSettings:
    from temporalio.envconfig import ClientConfigProfile

    try:
        profile = ClientConfigProfile.load(override_env_vars=dict(env))
    except Exception as exc:  # noqa: BLE001 - envconfig raises several types for bad files
        raise SettingsError(f"Temporal client configuration (TEMPORAL_* / config file) is invalid: {exc}") from None
    if not profile.address:
        return TemporalSettings(address=None, namespace=profile.namespace or "default")
    config = dict(profile.to_client_connect_config())
    return TemporalSettings(
        address=profile.address,
        namespace=profile.namespace or "default",
        connect_config=config,
    )


def _blob_store_config(env: Mapping[str, str], home: Path) -> BlobStoreConfig:
    bucket = env.get("BULKORDER_S3_BUCKET") or None
    folder = env.get("BULKORDER_BLOB_DIR") or None
    if bucket and folder:
        raise SettingsError("set either BULKORDER_S3_BUCKET or BULKORDER_BLOB_DIR, not both")
    return BlobStoreConfig(
        folder=None if bucket else str(Path(folder) if folder else home / "blobs"),
        s3_bucket=bucket,
        s3_prefix=env.get("BULKORDER_S3_PREFIX", ""),
        s3_endpoint_url=env.get("BULKORDER_S3_ENDPOINT_URL") or None,
        s3_region=env.get("BULKORDER_S3_REGION") or None,
    )


def _limits(env: Mapping[str, str]) -> OrderLimits:
    defaults = OrderLimits()
    values = {
        name: _positive_int(env, variable, getattr(defaults, name)) for variable, name in _LIMIT_VARIABLES.items()
    }
    assert set(values) <= {f.name for f in fields(OrderLimits)}
    return OrderLimits(**values)


def _claim_check_settings(env: Mapping[str, str]) -> ClaimCheckSettings:
    threshold = _positive_int(env, "BULKORDER_CLAIM_CHECK_THRESHOLD", DEFAULT_THRESHOLD)
    if threshold < MIN_THRESHOLD:
        raise SettingsError(
            f"BULKORDER_CLAIM_CHECK_THRESHOLD={threshold} is too small: at least {MIN_THRESHOLD} bytes "
            "(a reference payload takes about 250)"
        )
    cache_bytes = _non_negative_int(env, "BULKORDER_CLAIM_CHECK_CACHE_BYTES", DEFAULT_CACHE_BYTES)
    origins = tuple(o.strip().rstrip("/") for o in env.get("BULKORDER_CODEC_SERVER_CORS_ORIGINS", "").split(",") if o.strip())
    for origin in origins:
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            raise SettingsError(
                f"BULKORDER_CODEC_SERVER_CORS_ORIGINS: {origin!r} is not an origin "
                "(scheme://host[:port], e.g. http://localhost:8233)"
            )
    hosts = tuple(h.strip().lower() for h in env.get("BULKORDER_CODEC_SERVER_ALLOWED_HOSTS", "").split(",") if h.strip())
    for host in hosts:
        if not re.fullmatch(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]|[0-9a-f:.]+", host):
            raise SettingsError(
                f"BULKORDER_CODEC_SERVER_ALLOWED_HOSTS: {host!r} is not a host name (no scheme, port or path, "
                "e.g. codec.example.com)"
            )
    return ClaimCheckSettings(
        threshold=threshold,
        cache_bytes=cache_bytes,
        codec_server_token=env.get("BULKORDER_CODEC_SERVER_TOKEN") or None,
        codec_server_cors_origins=origins,
        codec_server_allowed_hosts=hosts,
        codec_server_max_body_bytes=_positive_int(
            env, "BULKORDER_CODEC_SERVER_MAX_BODY_BYTES", DEFAULT_CODEC_SERVER_MAX_BODY_BYTES
        ),
        codec_server_max_concurrency=_positive_int(
            env, "BULKORDER_CODEC_SERVER_MAX_CONCURRENCY", DEFAULT_CODEC_SERVER_MAX_CONCURRENCY
        ),
    )


def _encryption_settings(env: Mapping[str, str], home: Path) -> EncryptionSettings:
    try:
        return EncryptionSettings.from_env(env, home)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _seal_settings(env: Mapping[str, str]) -> SealSettings:
    try:
        return SealSettings.from_env(env)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _identity_settings(env: Mapping[str, str]) -> IdentitySettings:
    try:
        return IdentitySettings.from_env(env)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("on", "off"):
        raise SettingsError(f"{name}={raw!r}: expected on or off")
    return raw == "on"


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    return _int_setting(env, name, default, minimum=0, rule="must be zero or more")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    return _int_setting(env, name, default, minimum=1, rule="must be greater than zero")


def _int_setting(env: Mapping[str, str], name: str, default: int, *, minimum: int, rule: str) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} {rule}")
    return value
