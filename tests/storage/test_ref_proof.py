"""A ref's claims are believed when sealed by this deployment or borne out by its blob."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgpack
import pytest

from bulkorder.domain.refs import batch_key
from bulkorder.domain.sample_items import generate_items
from bulkorder.domain.seal import RefSealer
from bulkorder.domain.items import validate_item_dicts
from bulkorder.storage.batch_codec import frame_batch
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.blob_store import sha256_hex
from bulkorder.storage.folder_store import FolderBlobStore
from bulkorder.storage.ref_proof import RefProver

SEALER = RefSealer(b"a deployment secret for tests")


@pytest.fixture
def stores(tmp_path: Path) -> tuple[BatchStore, BatchStore]:
    """(the deployment's writer, an unsealed writer) over one folder."""
    blobs = FolderBlobStore(tmp_path / "blobs")
    return BatchStore(blobs, sealer=SEALER), BatchStore(blobs)


def items(count: int = 20) -> list[dict]:
    return validate_item_dicts(list(generate_items(count)))


def test_a_sealed_ref_is_proven_without_reading_its_blob(stores: tuple[BatchStore, BatchStore]) -> None:
    sealed_store, _ = stores
    ref, _data = sealed_store.encode(items())  # never written: no read is needed
    assert RefProver(sealed_store, SEALER).refusal(ref) is None


def test_an_unsealed_ref_is_proven_by_its_blob(stores: tuple[BatchStore, BatchStore]) -> None:
    sealed_store, plain = stores
    ref = plain.write(items())
    assert ref.seal == ""
    assert RefProver(sealed_store, SEALER).refusal(ref) is None


def test_inflated_claims_are_refused_naming_what_differs(stores: tuple[BatchStore, BatchStore]) -> None:
    sealed_store, plain = stores
    ref = plain.write(items())
    prover = RefProver(sealed_store, SEALER)
    inflated = dataclasses.replace(ref, totals={"USD": 1_620_100})
    assert "the ref's claims do not match its content: the ref claims totals {'USD': 1620100}" in prover.refusal(inflated)
    assert "claims quantity 999999" in prover.refusal(dataclasses.replace(ref, quantity=999_999))
    # A forged seal is no seal: the content decides.
    forged = dataclasses.replace(SEALER.seal(ref), quantity=999_999)
    assert "claims quantity 999999" in prover.refusal(forged)


def test_a_blob_of_unvalidated_items_proves_nothing(stores: tuple[BatchStore, BatchStore]) -> None:
    """A bucket writer's own batch, items beyond the domain's bounds: never believed."""
    sealed_store, _ = stores
    hostile = [{"sku": "X", "quantity": 2**62, "unit_price": {"amount": 1, "currency": "USD"}, "name": "x"}]
    data = frame_batch(msgpack.packb(hostile), 1)
    sha = sha256_hex(data)
    sealed_store.blobs.put(batch_key(sha), data)
    ref = dataclasses.replace(sealed_store.encode(items(1))[0], key=batch_key(sha), sha256=sha, size=len(data),
                              quantity=2**62, totals={"USD": 2**62}, seal="")
    reason = RefProver(sealed_store, SEALER).refusal(dataclasses.replace(ref, quantity=10**18, totals={"USD": 10**18}))
    assert reason is not None and "invalid items" in reason and "quantity" in reason


def test_a_missing_or_swapped_blob_proves_nothing(stores: tuple[BatchStore, BatchStore]) -> None:
    sealed_store, plain = stores
    ref, _ = plain.encode(items())
    prover = RefProver(sealed_store, SEALER)
    assert "its blob does not exist" in prover.refusal(ref)
    other = plain.write(items(21))
    swapped = dataclasses.replace(ref, key=other.key)  # the key of other bytes: not its content key
    assert prover.refusal(swapped) is not None


def test_unsealed_refs_past_one_calls_reading_budget_are_refused(stores: tuple[BatchStore, BatchStore]) -> None:
    """Many unsealed refs cannot make one record call read without bound."""
    sealed_store, plain = stores
    refs = [plain.write(items(20 + n)) for n in range(3)]
    sealed = sealed_store.write(items(50))
    budget = refs[0].size + refs[1].size
    verdicts = RefProver(sealed_store, SEALER).refusals([*refs, sealed], budget=budget)
    assert verdicts[:2] == [None, None] and verdicts[3] is None  # sealed refs cost nothing
    assert verdicts[2] is not None and "would pass this call's budget" in verdicts[2]
