"""Fixtures of the fault-injection suite, and the table of its one-line reports.

``make faults`` runs these cases at full scale (``BULKORDER_FAULT_SCALE=full``); ``make
test`` runs them reduced. The table of ``FAULT`` lines is printed at the end of the run.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bulkorder.domain.items import validate_item_dicts
from bulkorder.domain.sample_items import generate_items
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.folder_store import FolderBlobStore
from tests.faults.harness import REPORTED, SCALE, EncodedBatch
from tests.faults.importing import ItemsFile


#: Batches the cases that build orders from refs draw on (duplicates: 40; relay: a few per order).
ENCODED_BATCHES = 40


@pytest.fixture(scope="session")
def encoded_batches(tmp_path_factory: pytest.TempPathFactory) -> list[EncodedBatch]:
    """``ENCODED_BATCHES`` batches of ``SCALE.import_batch_items`` items, validated and
    encoded once; each case writes their bytes to its own blob store."""
    encoder = BatchStore(FolderBlobStore(tmp_path_factory.mktemp("encoder")))
    size = SCALE.import_batch_items
    batches = []
    for index in range(ENCODED_BATCHES):
        items = validate_item_dicts(list(generate_items(size, start=index * size)))
        ref, data = encoder.encode(items, batch_id=f"template-{index:06d}")
        batches.append(EncodedBatch(ref, data))
    return batches


@pytest.fixture(scope="session")
def items_file(tmp_path_factory: pytest.TempPathFactory) -> ItemsFile:
    """What the import cases import: ``SCALE.import_items`` generated items as NDJSON."""
    path = tmp_path_factory.mktemp("items") / "items.ndjson"
    with path.open("w", encoding="utf-8") as out:
        for item in generate_items(SCALE.import_items):
            out.write(json.dumps(item, separators=(",", ":")))
            out.write("\n")
    return ItemsFile(path, SCALE.import_items)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORTED:
        return
    terminalreporter.section(f"fault injection ({SCALE.name} scale)")
    for line in REPORTED:
        terminalreporter.write_line(str(line))
