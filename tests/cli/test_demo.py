"""``bulkorder demo``: the main job, end to end, with figures read from Temporal."""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import cli_env, run_cli

REQUIRED_FIELDS = {
    "order_id", "items", "batches", "runs", "max_history_events_per_run", "max_history_bytes_per_run",
    "event_store_events", "fulfilled_items", "seconds", "items_per_second",
}


async def test_demo_on_the_embedded_stack(tmp_path: Path) -> None:
    """No Temporal configured: the demo starts the embedded dev server itself."""
    result = await run_cli(
        "demo", "--items", "30000", "--batch-size", "500", "--max-history-events", "30", "--json",
        env=cli_env(tmp_path / "home"), timeout=300,
    )
    assert result.code == 0, result.stderr
    figures = result.json()
    assert REQUIRED_FIELDS <= set(figures)
    assert (figures["items"], figures["batches"], figures["fulfilled_items"]) == (30_000, 60, 30_000)
    assert figures["runs"] >= 2  # continued-as-new under the low threshold
    # Whatever the threshold, a run's history stays far below Temporal's limits.
    assert 0 < figures["max_history_events_per_run"] < 4_096
    assert 0 < figures["max_history_bytes_per_run"] < 4 * 1024 * 1024
    # Created + 60 ItemsAdded + Submitted + FulfillmentCompleted.
    assert figures["event_store_events"] == 63
    assert figures["items_per_second"] > 0
    # Where the time went: every phase measured, and together no more than the whole.
    phases = figures["phases"]
    assert set(phases) == {"generating", "storing", "recording", "fulfilment"}
    assert all(seconds >= 0 for seconds in phases.values()) and sum(phases.values()) <= figures["seconds"]
    # The embedded stack persisted its state under the bulkorder home.
    assert (tmp_path / "home" / "temporal.sqlite").exists()
    assert (tmp_path / "home" / "events.sqlite").exists()


async def test_demo_against_a_configured_server_prints_a_summary(temporal_address: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path, {"TEMPORAL_ADDRESS": temporal_address, "BULKORDER_TASK_QUEUE": "demo-test"})
    result = await run_cli("demo", "--items", "5000", "--batch-size", "500", "--order-id", "demo-x", env=env)
    assert result.code == 0, result.stderr
    assert "demo-x" in result.stdout and "fulfilled" in result.stdout
    assert "5,000 items streamed back" in result.stdout
    assert "where it went  generating" in result.stdout


async def test_demo_refuses_nonsense_sizes(tmp_path: Path) -> None:
    result = await run_cli("demo", "--items", "0", env=cli_env(tmp_path))
    assert result.code == 2 and "argument --items: '0' must be greater than zero" in result.stderr
