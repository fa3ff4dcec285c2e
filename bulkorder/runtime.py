"""Everything a bulkorder process needs, built from :class:`~bulkorder.settings.Settings`.

``open_runtime`` connects to Temporal (the configured cluster, a running ``bulkorder dev``,
or, when ``embedded`` is allowed, a dev server it starts itself) and opens the blob store
and, on first use, the event store.
"""

from __future__ import annotations

import dataclasses
import functools
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import AsyncIterator, Sequence

from temporalio.client import Client, Interceptor as ClientInterceptor
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime as TemporalRuntime, TelemetryConfig
from temporalio.worker import Worker

from bulkorder.embedded import EmbeddedTemporal, running_dev_address
from bulkorder.metrics import metered, record_observed
from bulkorder.workflow_metrics import HISTORY_LENGTH_BUCKETS, HISTORY_LENGTH_METRIC, HistoryLengthInterceptor
from bulkorder.settings import Settings
from bulkorder.domain.application import Orders
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.blob_store import BlobStore
from bulkorder.encryption import EncryptionSettings, data_keys
from bulkorder.storage.claim_check import ClaimCheckCodec
from bulkorder.storage.encryption.payloads import EncryptionCodec, ProtectedPayloadCodec
from bulkorder.storage.config import BlobStoreConfig
from bulkorder.workflows.client import OrderClient
from bulkorder.workflows.failures import BoundedFailureConverter
from bulkorder.workflows.worker import build_worker


class NoTemporalError(RuntimeError):
    pass


@dataclass
class Runtime:
    settings: Settings
    client: Client
    blobs: BlobStore
    batches: BatchStore
    _orders: Orders | None = field(default=None, repr=False)

    @property
    def orders(self) -> Orders:
        """The event store (opened on first use: a client-only process never needs it)."""
        if self._orders is None:
            self._orders = self.settings.open_orders()
        return self._orders

    def order_client(self) -> OrderClient:
        return OrderClient(
            self.client,
            task_queue=self.settings.task_queue,
            batches=self.batches,
            limits=self.settings.limits,
            identity=self.settings.order_identity(),
        )

    def worker(self, *, max_concurrent_activities: int = 16, graceful_shutdown: timedelta = timedelta(0)) -> Worker:
        """A worker with bulkorder's metrics: the record hook and the run history length."""
        return build_worker(
            self.client, orders=self.orders, batches=self.batches, task_queue=self.settings.task_queue,
            max_concurrent_activities=max_concurrent_activities, graceful_shutdown=graceful_shutdown,
            interceptors=[HistoryLengthInterceptor()], on_recorded=record_observed,
            sandboxed=self.settings.workflow_sandbox,
        )

    def close(self) -> None:
        if self._orders is not None:
            self._orders.close()
            self._orders = None


def data_converter(settings: Settings) -> DataConverter:
    """The converter every client and worker of one deployment must share: Temporal's
    default with the claim-check codec, so no payload exceeds Temporal's limits.

    Cheap to call: one converter (and one codec, with its cache and threads) per blob
    store and claim-check settings, per process. A worker takes its client's converter.
    """
    claim_check = settings.claim_check
    return _data_converter(settings.blob_store, claim_check.threshold, claim_check.cache_bytes, settings.encryption_settings)


def payload_codec(settings: Settings) -> ProtectedPayloadCodec:
    """The process's payload codec (encryption, then the claim check): the codec server's."""
    codec = data_converter(settings).payload_codec
    assert isinstance(codec, ProtectedPayloadCodec)
    return codec


def claim_check_codec(settings: Settings) -> ClaimCheckCodec:
    """The process's claim-check codec for these settings (the one in ``data_converter``)."""
    return payload_codec(settings).claim_check


class EncodedFailureConverter(BoundedFailureConverter):
    """Failure messages and stack traces travel in an encoded payload (so encrypted, like
    every payload), not as plain text in Temporal's history."""

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)


@functools.lru_cache(maxsize=16)
def _data_converter(
    blob_store: BlobStoreConfig, threshold: int, cache_bytes: int, encryption: EncryptionSettings
) -> DataConverter:
    # The blob store opens on the codec's first use: a command that never moves a large
    # payload never builds an S3 client for it.
    claim_check = ClaimCheckCodec(lambda: metered(blob_store.open()), threshold=threshold, cache_bytes=cache_bytes)
    sealing = EncryptionCodec(functools.partial(data_keys, encryption, blob_store), encrypt=encryption.enabled)
    codec = ProtectedPayloadCodec(sealing, claim_check)
    # Bounded failures: a retried step's last error stays readable in Temporal (workflows/failures.py).
    return dataclasses.replace(DataConverter.default, payload_codec=codec, failure_converter_class=EncodedFailureConverter)


def sdk_metrics_runtime(bind_address: str) -> TemporalRuntime:
    """A Temporal runtime whose SDK metrics (and the run history length,
    :mod:`bulkorder.workflow_metrics`) are served as Prometheus text at
    ``http://<bind_address>/metrics``; ``bulkorder.ops_server`` folds them into its page."""
    return TemporalRuntime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind_address,
                counters_total_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides={HISTORY_LENGTH_METRIC: [float(b) for b in HISTORY_LENGTH_BUCKETS]},
            )
        )
    )


async def connect(
    settings: Settings,
    address: str | None = None,
    *,
    runtime: TemporalRuntime | None = None,
    interceptors: Sequence[ClientInterceptor] = (),
) -> Client:
    options: dict[str, object] = {"data_converter": data_converter(settings), "interceptors": list(interceptors)}
    if runtime is not None:
        options["runtime"] = runtime
    if address is not None:
        return await Client.connect(address, namespace=settings.temporal.namespace, **options)  # type: ignore[arg-type]
    config = dict(settings.temporal.connect_config)
    target = config.pop("target_host")
    return await Client.connect(target, **{**config, **options})


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, embedded: bool = False, sdk_metrics_address: str | None = None
) -> AsyncIterator[Runtime]:
    """A connected runtime. With ``embedded`` and no Temporal configured or running,
    starts the embedded dev server for the duration. With ``sdk_metrics_address``
    (``host:port``), the Temporal SDK serves its metrics there (:func:`sdk_metrics_runtime`).
    With tracing configured (``bulkorder.tracing``), client and worker carry its interceptor."""
    from bulkorder.tracing import tracing_interceptors
    server: EmbeddedTemporal | None = None
    address: str | None = None
    if settings.temporal.embedded:
        address = running_dev_address(settings.home)
        if address is None:
            if not embedded:
                raise NoTemporalError(
                    "no Temporal server configured: set TEMPORAL_ADDRESS, or run `bulkorder dev` in another terminal"
                )
            server = EmbeddedTemporal(settings.home / "temporal.sqlite")
            address = await server.start()
    try:
        temporal_runtime = sdk_metrics_runtime(sdk_metrics_address) if sdk_metrics_address else None
        tracing = tracing_interceptors(settings)
        # The client's interceptors reach its workers too (temporalio applies a client
        # interceptor that is also a worker interceptor to every worker of that client).
        client = await connect(settings, address, runtime=temporal_runtime, interceptors=tracing)
        blobs = metered(settings.blob_store.open())
        batches = BatchStore(blobs, sealer=settings.seal.sealer(settings.home), protection=settings.blob_protection())
        runtime = Runtime(settings=settings, client=client, blobs=blobs, batches=batches)
        try:
            yield runtime
        finally:
            runtime.close()
    finally:
        if server is not None:
            await server.stop()
