"""The alternatives bench_import compares bulkorder with (benchmark code, not product code).

- :class:`InlineItemsWorkflow`: the plain entity workflow. Items arrive inline in signals
  and live in its state; its history grows with every item until Temporal terminates it.
- :class:`CountingItemsWorkflow`: the same entity used with temporalio's ``ExternalStorage``
  (the S3 driver): the signal payloads go to S3 and history holds claims, so it can
  continue-as-new, carrying its counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow


@workflow.defn
class InlineItemsWorkflow:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.closed = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.closed)
        return len(self.items)

    @workflow.signal
    def add_items(self, items: list[dict[str, Any]]) -> None:
        self.items.extend(items)

    @workflow.signal
    def close(self) -> None:
        self.closed = True

    @workflow.query
    def count(self) -> int:
        return len(self.items)


@dataclass
class Counters:
    items: int = 0
    quantity: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    runs: int = 1


@workflow.defn
class CountingItemsWorkflow:
    @workflow.init
    def __init__(self, counters: Counters | None = None) -> None:
        self.counters = counters or Counters()
        self.closed = False

    @workflow.run
    async def run(self, counters: Counters | None = None) -> Counters:
        await workflow.wait_condition(lambda: self.closed or workflow.info().is_continue_as_new_suggested())
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self.closed:
            self.counters.runs += 1
            workflow.continue_as_new(self.counters)
        return self.counters

    @workflow.signal
    def add_items(self, items: list[dict[str, Any]]) -> None:
        counters = self.counters
        for item in items:
            counters.items += 1
            counters.quantity += item["quantity"]
            price = item["unit_price"]
            counters.totals[price["currency"]] = (
                counters.totals.get(price["currency"], 0) + item["quantity"] * price["amount"]
            )

    @workflow.signal
    def close(self) -> None:
        self.closed = True

    @workflow.query
    def count(self) -> int:
        return self.counters.items
