"""OpenTelemetry tracing: one trace from ``bulkorder import`` through Temporal to the activities.

Off by default. On when an OTLP endpoint is configured (``BULKORDER_OTLP_ENDPOINT``, or
OpenTelemetry's own ``OTEL_EXPORTER_OTLP_ENDPOINT``), or with ``BULKORDER_TRACING=on`` in a
process whose tracer provider is set up by its host (a service, ``opentelemetry-instrument``,
a test's in-memory exporter). ``BULKORDER_TRACING=off`` wins over both.

When on, every client and worker of the process carries temporalio's
``TracingInterceptor`` (``temporalio.contrib.opentelemetry``): the span context travels in
Temporal headers, so the signal or update an import sends, the workflow handling it and
the activity that records it are spans of the import's trace; the fulfillment activity is
in the trace of the call that created the order. :func:`span` marks bulkorder's own
stages (the import's prepare, send and wait) and is a no-op when tracing is off.

OpenTelemetry is the optional extra ``tracing`` (``pip install 'bulkorder[tracing]'``),
imported only when tracing is on.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from bulkorder.extras import MissingExtraError

if TYPE_CHECKING:
    from bulkorder.settings import Settings

TRACING_EXTRA = "tracing"
SERVICE_NAME = "bulkorder"
_ON = {"1", "on", "true", "yes"}
_OFF = {"0", "off", "false", "no"}


class TracingUnavailableError(MissingExtraError):
    """Tracing is configured but OpenTelemetry is not installed (the ``tracing`` extra)."""

    def __init__(self, missing: str) -> None:
        super().__init__("tracing (BULKORDER_TRACING or an OTLP endpoint)", TRACING_EXTRA, missing)


@dataclass(frozen=True)
class TracingSettings:
    enabled: bool = False
    #: Base URL of an OTLP/HTTP collector (``http://collector:4318``); ``None``: the host's provider.
    otlp_endpoint: str | None = None
    #: True when only OTEL_EXPORTER_OTLP_* is set: the exporter reads its own variables.
    otel_env: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TracingSettings:
        switch = env.get("BULKORDER_TRACING", "").strip().lower()
        endpoint = env.get("BULKORDER_OTLP_ENDPOINT") or None
        otel_env = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        if switch and switch not in _ON | _OFF:
            from bulkorder.settings import SettingsError

            raise SettingsError(f"BULKORDER_TRACING={switch!r}: use on or off")
        if switch in _OFF:
            return cls()
        return cls(enabled=switch in _ON or endpoint is not None or otel_env, otlp_endpoint=endpoint, otel_env=otel_env)

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        if self.otlp_endpoint:
            return f"OTLP to {self.otlp_endpoint}"
        return "OTLP (OTEL_EXPORTER_OTLP_*)" if self.otel_env else "on (the process's tracer provider)"


_active = False
_exporting: Any = None  # the tracer provider this module installed, if any


def _opentelemetry() -> Any:
    try:
        import opentelemetry.trace as trace
        from temporalio.contrib.opentelemetry import TracingInterceptor  # noqa: F401 - needs opentelemetry too
    except ImportError as exc:
        raise TracingUnavailableError(exc.name or "opentelemetry") from None
    return trace


def _install_otlp_exporter(tracing: TracingSettings) -> None:
    """Once per process: a tracer provider exporting to the configured OTLP endpoint."""
    global _exporting
    if _exporting is not None or not (tracing.otlp_endpoint or tracing.otel_env):
        return
    trace = _opentelemetry()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailableError(exc.name or "opentelemetry-sdk") from None
    exporter = (
        OTLPSpanExporter(endpoint=tracing.otlp_endpoint.rstrip("/") + "/v1/traces")
        if tracing.otlp_endpoint
        else OTLPSpanExporter()
    )
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _exporting = provider


def flush_traces(timeout_millis: int = 10_000) -> None:
    """Send the spans still buffered (the CLI leaves with ``os._exit``, skipping atexit)."""
    if _exporting is not None:
        _exporting.force_flush(timeout_millis)


def tracing_interceptors(settings: Settings) -> list[Any]:
    """The interceptors for a client (and so its workers): ``[TracingInterceptor()]`` when
    tracing is on, else none. Raises :class:`TracingUnavailableError` without the extra."""
    global _active
    if not settings.tracing.enabled:
        return []
    _opentelemetry()
    _install_otlp_exporter(settings.tracing)
    from temporalio.contrib.opentelemetry import TracingInterceptor

    _active = True
    return [TracingInterceptor()]


@contextmanager
def span(name: str, **attributes: str | int | float | bool) -> Iterator[None]:
    """A span named ``name`` around the block, when this process traces; else nothing."""
    if not _active:
        yield
        return
    import opentelemetry.trace as trace

    with trace.get_tracer("bulkorder").start_as_current_span(name, attributes=attributes):
        yield
