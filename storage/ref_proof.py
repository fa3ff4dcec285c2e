"""Proving a ref's claims before they change an order's recorded counters.

A :class:`~bulkorder.domain.refs.BatchRef` claims how many items its batch holds, their quantity and
their totals. A claim is believed when bulkorder's own writer sealed it (``bulkorder.domain.seal``:
an HMAC with the deployment's secret, checked without I/O) or, failing that, when the blob
itself bears it out: read (bounded by the ref's size, checked against its sha-256),
decoded, and every counted field of every item checked and added up. Anything else is a
rejection with its reason, recorded as ``BatchRejected``, never the claim.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from bulkorder.domain.counters import count_items
from bulkorder.domain.items import ItemValidationError
from bulkorder.domain.refs import BatchRef, InvalidRefError
from bulkorder.domain.seal import RefSealer
from bulkorder.storage.batches import BatchStore
from bulkorder.storage.errors import BlobNotFoundError, ForeignBatchError, StorageError, TransientStoreError


def claims_mismatch(ref: BatchRef, items: Sequence[Mapping[str, Any]]) -> str | None:
    """Why ``items`` do not bear out ``ref``'s counters, else ``None``.

    Raises :class:`~bulkorder.domain.items.ItemValidationError` if a counted field is invalid."""
    if len(items) != ref.item_count:
        return f"the ref claims {ref.item_count} items, its batch holds {len(items)}"
    quantity, totals = count_items(items, f"batch {ref.batch_id}")
    if quantity != ref.quantity:
        return f"the ref claims quantity {ref.quantity}, its items add up to {quantity}"
    if totals != ref.totals:
        return f"the ref claims totals {ref.totals}, its items add up to {totals}"
    return None


#: Stored bytes of unsealed batches one call may read to check them (about a million
#: items): a hostile client sending many unsealed refs cannot make one record call outlive
#: its timeout, which would be retried for good.
PROOF_BUDGET_BYTES = 32 * 2**20


class RefProver:
    """Decides, per ref, whether its claims may be recorded.

    ``sealer`` is None where no secret is configured: every ref is then checked against
    its blob (correct, and slower: the worker reads each batch once more).
    """

    def __init__(self, batches: BatchStore, sealer: RefSealer | None) -> None:
        self.batches = batches
        self.sealer = sealer

    def refusals(
        self, refs: Sequence[BatchRef], budget: int = PROOF_BUDGET_BYTES, *, order_id: str | None = None
    ) -> list[str | None]:
        """:meth:`refusal` for each ref of ``order_id``, reading at most ``budget`` bytes of
        blobs in all; an unsealed ref past the budget is refused, naming it (resend it sealed)."""
        out: list[str | None] = []
        scope = self.batches.seal_scope(order_id)
        for ref in refs:
            sealed_for = None if self.sealer is None else self.sealer.verified_scope(ref, scope)
            if sealed_for is not None:
                # A seal of no order in particular (a batch stored with no order named, or
                # sealed before seals named their order) in an order that has a key: the
                # batch's own data key must say it is this order's (or the shared one's).
                out.append(self._owner_refusal(ref, order_id) if scope and not sealed_for else None)
                continue
            size = ref.size if type(ref.size) is int and ref.size > 0 else budget + 1
            if size > budget:
                out.append(
                    "unproven claims: the ref is not sealed by this deployment, and checking its content "
                    f"({size} bytes) would pass this call's budget of {PROOF_BUDGET_BYTES} bytes"
                )
                continue
            budget -= size
            out.append(self._content_refusal(ref, order_id))
        return out

    def refusal(self, ref: BatchRef, *, order_id: str | None = None) -> str | None:
        """``None`` if ``ref``'s claims (for ``order_id``) are proven, else the reason to reject it."""
        return self.refusals([ref], budget=max(PROOF_BUDGET_BYTES, ref.size if type(ref.size) is int else 0), order_id=order_id)[0]

    def _owner_refusal(self, ref: BatchRef, order_id: str | None) -> str | None:
        """Why a ref sealed for no order in particular may not count in ``order_id``: its
        blob (read whole: checked against its hash and size, and opened) is sealed with
        another order's data key; or it cannot be read at all. ``None`` if it is the order's."""
        try:
            self.batches.fetch(ref, order_id=order_id)
        except ForeignBatchError as exc:
            return f"unproven claims: {exc}"
        except BlobNotFoundError:
            return "unproven claims: the ref's seal names no order and its blob does not exist"
        except TransientStoreError:
            raise  # the store briefly down: the call is retried, nothing is decided
        except (StorageError, ValueError, TypeError) as exc:
            return f"unproven claims: the ref's seal names no order and its blob is unreadable ({exc})"
        return None

    def _content_refusal(self, ref: BatchRef, order_id: str | None) -> str | None:
        """The content check alone: the blob read (as ``order_id``'s: a batch sealed with
        another order's key is refused), decoded and counted against the ref."""
        try:
            items = self.batches.read(ref, order_id=order_id)
            mismatch = claims_mismatch(ref, items)
        except BlobNotFoundError:
            # The writer may not have finished uploading (writers upload before they
            # send a ref, so only a misbehaving one gets here): unproven is unproven.
            return "unproven claims: the ref is not sealed by this deployment and its blob does not exist"
        except InvalidRefError as exc:
            return f"invalid batch ref: {exc}"
        except ItemValidationError as exc:
            return f"unproven claims: the ref is not sealed by this deployment and its batch holds invalid items ({exc})"
        except TransientStoreError:
            raise  # the store briefly down: the call is retried, nothing is decided
        except (StorageError, ValueError, TypeError) as exc:
            # Unreadable for good (corrupt, a symlink or a foreign key planted at its
            # key...): this ref alone is rejected, never the chunk it came with.
            return f"unproven claims: the ref is not sealed by this deployment and its blob is unreadable ({exc})"

        if mismatch is not None:
            return f"the ref's claims do not match its content: {mismatch}"
        return None
