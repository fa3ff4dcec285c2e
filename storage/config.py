"""Where blobs and events are kept: small, immutable settings objects that open stores.

The event store is configured the eventsourcing way, by environment variables
(``PERSISTENCE_MODULE``, ``SQLITE_*``, ``POSTGRES_*``, ``COMPRESSOR_TOPIC``, ``CIPHER_*``,
each also accepted with the application's ``ORDERS_`` prefix). :class:`EventStoreConfig`
holds such a set of variables, picks the embedded SQLite default when none is given,
and describes itself without ever showing a password or key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from bulkorder.storage.blob_store import BlobStore

if TYPE_CHECKING:
    from bulkorder.domain.application import EventProtection, Orders
    from bulkorder.domain.identity import OrderIdentity

#: eventsourcing reads ``ORDERS_X`` before ``X`` for the ``Orders`` application.
APP_PREFIX = "ORDERS_"
SQLITE_MODULE = "eventsourcing.sqlite"
POSTGRES_MODULE = "eventsourcing.postgres"
DEFAULT_SQLITE_LOCK_TIMEOUT = 30  # seconds a writer waits for SQLite's lock

# Variable names eventsourcing (9.5) reads; the SQLITE_ and POSTGRES_ families in full.
_EVENTSOURCING_NAMES = frozenset(
    {
        "PERSISTENCE_MODULE", "INFRASTRUCTURE_FACTORY", "FACTORY_TOPIC",
        "TRANSCODER_TOPIC", "MAPPER_TOPIC", "CIPHER_TOPIC", "CIPHER_KEY", "COMPRESSOR_TOPIC",
        "IS_SNAPSHOTTING_ENABLED", "APPLICATION_RECORDER_TOPIC", "TRACKING_RECORDER_TOPIC",
        "PROCESS_RECORDER_TOPIC", "SINGLE_ROW_TRACKING", "ORIGINATOR_ID_TYPE", "CREATE_TABLE",
    }
)
_EVENTSOURCING_FAMILIES = ("SQLITE_", "POSTGRES_")
#: Kept even when the embedded SQLite default is chosen: how events are encoded at rest.
_CODEC_NAMES = frozenset({"COMPRESSOR_TOPIC", "CIPHER_TOPIC", "CIPHER_KEY"})
_SECRET_MARKERS = ("PASSWORD", "CIPHER_KEY", "SECRET", "TOKEN")


def _base_name(name: str) -> str:
    return name[len(APP_PREFIX) :] if name.startswith(APP_PREFIX) else name


def is_eventsourcing_variable(name: str) -> bool:
    base = _base_name(name)
    return base in _EVENTSOURCING_NAMES or base.startswith(_EVENTSOURCING_FAMILIES)


def _is_secret(name: str) -> bool:
    return any(marker in name for marker in _SECRET_MARKERS) and not name.endswith("_TOPIC")


def redact_url(url: str) -> str:
    """``url`` without the password of its user info (``http://user:***@host``)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not (sep and at and ":" in userinfo):
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{slash}{path}"


@dataclass(frozen=True)
class BlobStoreConfig:
    """Which blob store to use: an S3 bucket if one is named, else a local folder."""

    folder: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None

    def open(self) -> BlobStore:
        if self.s3_bucket:
            from bulkorder.storage.s3_store import S3BlobStore  # boto3 is slow to import: only when used

            return S3BlobStore(
                self.s3_bucket,
                prefix=self.s3_prefix,
                endpoint_url=self.s3_endpoint_url,
                region_name=self.s3_region,
            )
        if self.folder:
            from bulkorder.storage.folder_store import FolderBlobStore

            return FolderBlobStore(self.folder)
        raise ValueError("no blob store configured: give a folder or an S3 bucket")

    def describe(self) -> str:
        if self.s3_bucket:
            where = f"s3://{self.s3_bucket}/{self.s3_prefix.strip('/')}"
            return f"{where} (endpoint {redact_url(self.s3_endpoint_url)})" if self.s3_endpoint_url else where
        return f"folder {self.folder}" if self.folder else "no blob store"

    def __repr__(self) -> str:
        endpoint = redact_url(self.s3_endpoint_url) if self.s3_endpoint_url else None
        return (
            f"BlobStoreConfig(folder={self.folder!r}, s3_bucket={self.s3_bucket!r}, s3_prefix={self.s3_prefix!r}, "
            f"s3_endpoint_url={endpoint!r}, s3_region={self.s3_region!r})"
        )


@dataclass(frozen=True, repr=False)
class EventStoreConfig:
    """eventsourcing environment variables for the ``Orders`` application.

    Build one with :meth:`sqlite` or :meth:`from_env`; :meth:`open_orders` opens the
    application on exactly these settings.
    """

    variables: tuple[tuple[str, str], ...]

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> EventStoreConfig:
        return cls(tuple(sorted((str(k), str(v)) for k, v in env.items())))

    @classmethod
    def sqlite(
        cls,
        path: str | Path,
        *,
        lock_timeout: int = DEFAULT_SQLITE_LOCK_TIMEOUT,
        extra: Mapping[str, str] | None = None,
    ) -> EventStoreConfig:
        """The embedded default: one SQLite file (its folder is created)."""
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(extra or {})
        env.update(
            PERSISTENCE_MODULE=SQLITE_MODULE,
            SQLITE_DBNAME=str(path),
            SQLITE_LOCK_TIMEOUT=str(lock_timeout),
        )
        return cls.from_mapping(env)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, default_sqlite_path: str | Path = ".bulkorder/events.sqlite"
    ) -> EventStoreConfig:
        """Settings from environment variables (``os.environ`` by default).

        If ``PERSISTENCE_MODULE`` (or ``ORDERS_PERSISTENCE_MODULE``) is set, every
        eventsourcing variable passes through unchanged. Otherwise the events go to SQLite
        at ``default_sqlite_path``; the compressor and cipher settings still apply.
        """
        environ = os.environ if environ is None else environ
        if environ.get("PERSISTENCE_MODULE") or environ.get(APP_PREFIX + "PERSISTENCE_MODULE"):
            return cls.from_mapping({k: v for k, v in environ.items() if is_eventsourcing_variable(k)})
        codec = {k: v for k, v in environ.items() if _base_name(k) in _CODEC_NAMES}
        return cls.sqlite(default_sqlite_path, extra=codec)

    def env(self) -> dict[str, str]:
        return dict(self.variables)

    def get(self, name: str) -> str | None:
        """The value eventsourcing will use for ``name`` (the prefixed name wins)."""
        env = self.env()
        value = env.get(APP_PREFIX + name)
        return value if value is not None else env.get(name)

    @property
    def persistence_module(self) -> str:
        return (
            self.get("PERSISTENCE_MODULE")
            or self.get("INFRASTRUCTURE_FACTORY")
            or self.get("FACTORY_TOPIC")
            or "eventsourcing.popo"
        )

    def open_orders(self, protection: EventProtection | None = None, identity: OrderIdentity | None = None) -> Orders:
        """Open the orders application on these settings (close it when done).

        eventsourcing merges the process environment under the variables given; every
        variable set here is also passed with the ``ORDERS_`` prefix, so a stray
        ``ORDERS_...`` in the process environment cannot override this configuration.
        """
        from bulkorder.domain.application import Orders

        env = self.env()
        for name, value in self.variables:
            if not name.startswith(APP_PREFIX):
                env.setdefault(APP_PREFIX + name, value)
        dbname = self.get("SQLITE_DBNAME")
        if self.persistence_module == SQLITE_MODULE and dbname and not _is_special_sqlite_name(dbname):
            Path(dbname).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return Orders(env=env, protection=protection, identity=identity)

    def describe(self) -> str:
        """One line for logs and the CLI; never shows passwords or keys."""
        module = self.persistence_module
        if module == SQLITE_MODULE:
            text = f"SQLite {self.get('SQLITE_DBNAME')}"
            timeout = self.get("SQLITE_LOCK_TIMEOUT")
            text += f" (lock timeout {timeout} s)" if timeout else ""
        elif module == POSTGRES_MODULE:
            text = (
                f"PostgreSQL {self.get('POSTGRES_USER')}@{self.get('POSTGRES_HOST')}:"
                f"{self.get('POSTGRES_PORT') or '5432'}/{self.get('POSTGRES_DBNAME')}"
            )
            schema = self.get("POSTGRES_SCHEMA")
            text += f" schema {schema}" if schema else ""
        elif module == "eventsourcing.popo":
            text = "in memory (eventsourcing.popo: nothing is saved)"
        else:
            text = f"persistence module {module}"
        if self.get("COMPRESSOR_TOPIC"):
            text += f", compressed with {self.get('COMPRESSOR_TOPIC')}"
        if self.get("CIPHER_TOPIC") or self.get("CIPHER_KEY"):
            text += f", encrypted with {self.get('CIPHER_TOPIC') or 'eventsourcing.cipher:AESCipher'}"
        return text

    def redacted_env(self) -> dict[str, str]:
        """The variables with secrets replaced by ``***`` (for logs and repr)."""
        return {k: ("***" if _is_secret(k) and v else v) for k, v in self.variables}

    def __repr__(self) -> str:
        return f"EventStoreConfig({self.redacted_env()!r})"


def _is_special_sqlite_name(dbname: str) -> bool:
    return ":memory:" in dbname or "mode=memory" in dbname or dbname.startswith("file:")
