"""One trace follows an import: from ``bulkorder import`` through the signals, the workflow
and the record activity; fulfillment is in the trace of the call that created the order.
Real Temporal, a real worker, OpenTelemetry's in-memory exporter."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Mapping

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bulkorder.commands.imports import import_traced
from bulkorder.domain.sample_items import generate_items
from bulkorder.importer import ImportOptions, pipeline
from bulkorder.runtime import open_runtime
from bulkorder.settings import Settings
from bulkorder.tracing import TracingSettings, span, tracing_interceptors
from tests.cli.helpers import stack_env, write_ndjson


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first to set it in this process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_tracing_is_off_unless_configured() -> None:
    assert not TracingSettings.from_env({}).enabled
    assert TracingSettings.from_env({"BULKORDER_OTLP_ENDPOINT": "http://collector:4318"}).enabled
    assert TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}).enabled
    assert not TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "BULKORDER_TRACING": "off"}).enabled
    assert TracingSettings.from_env({"BULKORDER_TRACING": "on"}).enabled
    with pytest.raises(ValueError, match="BULKORDER_TRACING"):
        TracingSettings.from_env({"BULKORDER_TRACING": "maybe"})
    settings = Settings.from_env({"BULKORDER_HOME": "/tmp/x"})
    assert tracing_interceptors(settings) == []


async def test_one_trace_from_import_to_the_record_activity(
    spans: InMemorySpanExporter,
    temporal_address: str,
    task_queue: str,
    tmp_path: Path,
    event_store_env: Mapping[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Five refs a call: the create carries the first five, signals the other fifteen.
    monkeypatch.setattr(pipeline, "SEND_MAX_REFS", 5)
    env = stack_env(task_queue, temporal_address, tmp_path, event_store_env)
    settings = Settings.from_env({**env, "BULKORDER_TRACING": "on"})
    items = write_ndjson(tmp_path / "items.ndjson", list(generate_items(10_000)))
    order_id = f"acme/traced-{uuid.uuid4().hex[:8]}"
    spans.clear()
    async with open_runtime(settings) as runtime:
        async with runtime.worker():
            client = runtime.order_client()
            options = ImportOptions(batch_size=500, create_customer="acme", workers=1)
            summary = await import_traced(client, runtime, order_id, str(items), options, None)
            assert summary.items == 10_000
            with span("test submit"):
                await client.submit(order_id)
            closed = await client.wait_closed(order_id)
            assert closed.status == "fulfilled"
    finished = spans.get_finished_spans()
    root = next(s for s in finished if s.name == "bulkorder import")
    in_import = [s for s in finished if s.context.trace_id == root.context.trace_id]
    names = {s.name for s in in_import}
    assert {"import.prepare", "import.send", "import.wait_recorded"} <= names, names
    # The import's signals, the workflow handling them, the record activity it ran.
    assert any(name.startswith("SignalWorkflow:") for name in names), names
    assert any(name.startswith("HandleSignal:") for name in names), names
    assert any(name.startswith("RunActivity:") and "record" in name for name in names), names
    # The order was created by this import: its run, and so fulfillment, are in this trace.
    assert any(name.startswith("RunWorkflow:") for name in names), names
    assert any(name.startswith("RunActivity:") and "fulfill" in name for name in names), names
    # The submit, a call of its own, starts its own trace (its update's client span).
    submit = next(s for s in finished if s.name == "test submit")
    assert submit.context.trace_id != root.context.trace_id
    assert any(s.name == "StartWorkflowUpdate:submit" for s in finished if s.context.trace_id == submit.context.trace_id)


async def test_the_commands_export_over_otlp_when_an_endpoint_is_set(
    temporal_address: str, task_queue: str, tmp_path: Path, event_store_env: Mapping[str, str]
) -> None:
    from aiohttp import web

    from tests.cli.helpers import run_cli
    from tests.cli.test_stack_commands import start, wait_for_line

    received: list[bytes] = []

    async def collect(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        received.append(await request.read())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    env = {**stack_env(task_queue, temporal_address, tmp_path, event_store_env), "BULKORDER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
    items = write_ndjson(tmp_path / "items.ndjson", list(generate_items(2_000)))
    worker = await start(["worker"], env)
    try:
        await wait_for_line(worker, "worker polling")
        done = await run_cli("import", f"acme/otlp-{uuid.uuid4().hex[:8]}", str(items), "--create", "--customer", "acme", env=env)
        assert done.code == 0, done.stderr
    finally:
        worker.send_signal(__import__("signal").SIGTERM)
        await worker.wait()
        await runner.cleanup()
    sent = b"".join(received)
    assert b"bulkorder import" in sent and b"import.send" in sent, "the import's spans"
    assert b"RunActivity:record_order_change" in sent, "the worker's spans"
