"""Settings from the environment: defaults, overrides, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkorder.settings import Settings, SettingsError


def test_defaults_are_the_embedded_stack(tmp_path: Path) -> None:
    settings = Settings.from_env({"BULKORDER_HOME": str(tmp_path)})
    assert settings.temporal.embedded
    assert settings.blob_store.folder == str(tmp_path / "blobs")
    assert settings.event_store.env()["SQLITE_DBNAME"] == str(tmp_path / "events.sqlite")
    assert settings.limits.max_history_events == 2_000 and settings.batch_size == 5_000
    assert settings.task_queue == "bulkorder"


def test_temporal_follows_temporalio_env_conventions(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "BULKORDER_HOME": str(tmp_path),
        "TEMPORAL_ADDRESS": "temporal.example.com:7233",
        "TEMPORAL_NAMESPACE": "orders",
        "TEMPORAL_API_KEY": "secret-key",
    })
    assert not settings.temporal.embedded
    assert settings.temporal.address == "temporal.example.com:7233"
    assert settings.temporal.namespace == "orders"
    assert settings.temporal.connect_config["api_key"] == "secret-key"
    assert settings.temporal.connect_config["tls"] is True  # an API key implies TLS
    assert "secret-key" not in str(settings.describe())


def test_s3_and_postgres_and_limits(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "BULKORDER_HOME": str(tmp_path),
        "BULKORDER_S3_BUCKET": "orders-blobs",
        "BULKORDER_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "BULKORDER_S3_PREFIX": "prod",
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "orders",
        "POSTGRES_PASSWORD": "hunter2",
        "BULKORDER_MAX_HISTORY_EVENTS": "1_000",
        "BULKORDER_MAX_SIGNALS": "4000",
    })
    assert settings.blob_store.s3_bucket == "orders-blobs" and settings.blob_store.folder is None
    assert settings.blob_store.s3_endpoint_url == "http://127.0.0.1:9000"
    assert settings.event_store.env()["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert "hunter2" not in settings.event_store.describe()
    assert (settings.limits.max_history_events, settings.limits.max_signals) == (1_000, 4_000)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BULKORDER_MAX_HISTORY_EVENTS": "many"}, "BULKORDER_MAX_HISTORY_EVENTS='many' is not a whole number"),
        ({"BULKORDER_MAX_UPDATES": "0"}, "BULKORDER_MAX_UPDATES='0' must be greater than zero"),
        ({"BULKORDER_S3_BUCKET": "b", "BULKORDER_BLOB_DIR": "/x"}, "either BULKORDER_S3_BUCKET or BULKORDER_BLOB_DIR"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_claim_check_settings(tmp_path: Path) -> None:
    defaults = Settings.from_env({"BULKORDER_HOME": str(tmp_path)}).claim_check
    assert (defaults.threshold, defaults.cache_bytes) == (128 * 1024, 256 * 1024 * 1024)
    assert defaults.codec_server_token is None and defaults.codec_server_cors_origins == ()
    settings = Settings.from_env({
        "BULKORDER_HOME": str(tmp_path),
        "BULKORDER_CLAIM_CHECK_THRESHOLD": "64_000",
        "BULKORDER_CLAIM_CHECK_CACHE_BYTES": "0",
        "BULKORDER_CODEC_SERVER_TOKEN": "zq9-token",
        "BULKORDER_CODEC_SERVER_CORS_ORIGINS": "http://localhost:8233, https://temporal.example.com/",
    })
    check = settings.claim_check
    assert (check.threshold, check.cache_bytes, check.codec_server_token) == (64_000, 0, "zq9-token")
    assert check.codec_server_cors_origins == ("http://localhost:8233", "https://temporal.example.com")
    assert "zq9" not in repr(settings) and "zq9" not in str(settings.describe())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BULKORDER_CLAIM_CHECK_THRESHOLD": "100"}, "BULKORDER_CLAIM_CHECK_THRESHOLD=100 is too small"),
        ({"BULKORDER_CLAIM_CHECK_CACHE_BYTES": "-1"}, "BULKORDER_CLAIM_CHECK_CACHE_BYTES='-1' must be zero or more"),
        ({"BULKORDER_CODEC_SERVER_CORS_ORIGINS": "localhost:8233"}, "'localhost:8233' is not an origin"),
        ({"BULKORDER_CODEC_SERVER_CORS_ORIGINS": "http://ui.example/path"}, "is not an origin"),
    ],
)
def test_claim_check_settings_errors_name_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"BULKORDER_HOME": str(tmp_path), **env})


SECRETS = {
    "TEMPORAL_API_KEY": "api-key-sekrit",
    "TEMPORAL_TLS_CLIENT_CERT_DATA": "client-cert-data",
    "TEMPORAL_TLS_CLIENT_KEY_DATA": "private-key-sekrit",
    "TEMPORAL_GRPC_META_AUTHORIZATION": "Bearer meta-sekrit",
    "BULKORDER_CODEC_SERVER_TOKEN": "codec-token-sekrit",
    "POSTGRES_PASSWORD": "pg-password-sekrit",
    "CIPHER_KEY": "cipher-key-sekrit",
}


def test_no_settings_object_shows_a_secret(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "BULKORDER_HOME": str(tmp_path),
        "TEMPORAL_ADDRESS": "temporal.example.com:7233",
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "CIPHER_TOPIC": "eventsourcing.cipher:AESCipher",
        **SECRETS,
    })
    # The secrets are there to be used...
    assert settings.temporal.connect_config["api_key"] == SECRETS["TEMPORAL_API_KEY"]
    assert settings.temporal.connect_config["tls"].client_private_key == b"private-key-sekrit"
    assert settings.claim_check.codec_server_token == SECRETS["BULKORDER_CODEC_SERVER_TOKEN"]
    assert settings.event_store.get("POSTGRES_PASSWORD") == SECRETS["POSTGRES_PASSWORD"]
    # ...and never shown.
    views = {
        "Settings": (repr(settings), str(settings), str(settings.describe())),
        "TemporalSettings": (repr(settings.temporal), str(settings.temporal)),
        "ClaimCheckSettings": (repr(settings.claim_check), str(settings.claim_check)),
        "EventStoreConfig": (repr(settings.event_store), str(settings.event_store), settings.event_store.describe()),
    }
    for name, texts in views.items():
        for text in texts:
            for variable, secret in SECRETS.items():
                assert secret not in text, f"{name} shows {variable}"
                assert secret.split()[-1] not in text
    # What is redacted still says that it is set.
    assert "'api_key': '***'" in repr(settings.temporal) and "'tls': '***'" in repr(settings.temporal)
    assert "codec_server_token='***'" in repr(settings.claim_check)
    assert "target_host" in repr(settings) and "temporal.example.com:7233" in repr(settings)


def test_codec_server_settings(tmp_path: Path) -> None:
    defaults = Settings.from_env({"BULKORDER_HOME": str(tmp_path)}).claim_check
    assert defaults.codec_server_max_body_bytes == 8 * 2**20 and defaults.codec_server_max_concurrency == 8
    assert defaults.codec_server_allowed_hosts == ()
    check = Settings.from_env({
        "BULKORDER_HOME": str(tmp_path),
        "BULKORDER_CODEC_SERVER_MAX_BODY_BYTES": "1_000_000",
        "BULKORDER_CODEC_SERVER_MAX_CONCURRENCY": "2",
        "BULKORDER_CODEC_SERVER_ALLOWED_HOSTS": "Codec.Example.com, 10.0.0.5",
    }).claim_check
    assert (check.codec_server_max_body_bytes, check.codec_server_max_concurrency) == (1_000_000, 2)
    assert check.codec_server_allowed_hosts == ("codec.example.com", "10.0.0.5")
    for env, message in (
        ({"BULKORDER_CODEC_SERVER_ALLOWED_HOSTS": "https://codec.example.com"}, "is not a host name"),
        ({"BULKORDER_CODEC_SERVER_MAX_BODY_BYTES": "0"}, "BULKORDER_CODEC_SERVER_MAX_BODY_BYTES='0' must be greater"),
        ({"BULKORDER_CODEC_SERVER_MAX_CONCURRENCY": "x"}, "BULKORDER_CODEC_SERVER_MAX_CONCURRENCY='x' is not"),
    ):
        with pytest.raises(SettingsError, match=message):
            Settings.from_env({"BULKORDER_HOME": str(tmp_path), **env})


def test_an_endpoint_url_with_a_password_is_shown_without_it(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "BULKORDER_HOME": str(tmp_path),
        "BULKORDER_S3_BUCKET": "orders",
        "BULKORDER_S3_ENDPOINT_URL": "http://minio:url-pass-sekrit@127.0.0.1:9000/",
    })
    assert settings.blob_store.s3_endpoint_url == "http://minio:url-pass-sekrit@127.0.0.1:9000/"
    for text in (repr(settings), repr(settings.blob_store), settings.blob_store.describe(), str(settings.describe())):
        assert "url-pass-sekrit" not in text and "minio:***@127.0.0.1:9000" in text
