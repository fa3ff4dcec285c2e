"""The claim-check reference: the ~250-byte payload Temporal carries instead of a large one.

A reference is a small JSON body (:class:`ClaimCheck`) under the encoding
``binary/bulkorder-claim-check``. Anyone who can start a workflow or call the codec server
can send one, so :meth:`ClaimCheck.from_payload` believes nothing: a reference is at most
:data:`MAX_REFERENCE_BYTES` of flat JSON, its key must be the content key of its sha-256,
its sizes must be sizes, and it may not promise more than :data:`MAX_EXPANSION_RATIO`
original bytes per stored byte. Anything else is a :class:`~bulkorder.storage.errors.ClaimCheckError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from temporalio.api.common.v1 import Payload

from bulkorder.storage.blob_store import content_key
from bulkorder.storage.errors import ClaimCheckError, InvalidBlobKeyError

#: The ``encoding`` metadata of a reference payload.
REFERENCE_ENCODING = b"binary/bulkorder-claim-check"
#: Version of the reference body; a reader refuses versions it does not know.
REFERENCE_VERSION = 1
#: Blob keys of claim-checked payloads start with this prefix.
KEY_PREFIX = "payloads"
COMPRESSION_ZSTD = "zstd"
COMPRESSION_NONE = "none"
COMPRESSIONS = frozenset({COMPRESSION_ZSTD, COMPRESSION_NONE})

#: A payload of an order's workflow is stored under ``payloads/w/<workflow ID>/...`` (its
#: *scope*), so garbage collection can tell whose it is and collect it once Temporal no
#: longer holds that workflow (docs/data_protection.md). Only order workflow IDs that are
#: valid key segments (the keyed ``order-v2-<hex>``: no personal data; an old
#: ``order-<ID>`` in lower case) scope a key; any other payload is stored unscoped.
SCOPE_SEGMENT = "w"
SCOPE_PATTERN = re.compile(r"order-[a-z0-9][a-z0-9_-]{0,139}")

#: protobuf cannot parse a message of 2 GiB or more: no reference may promise one.
MAX_ORIGINAL_SIZE = (2 << 30) - 1
#: A reference is ~250 bytes of JSON; anything much larger is not one (and is not parsed).
MAX_REFERENCE_BYTES = 1024
#: No reference may promise more than this many original bytes per stored byte. JSON of
#: sample items compresses ~10x; only degenerate payloads (runs of one byte) go past this,
#: and those are stored uncompressed. It bounds what a small blob can make a reader allocate.
MAX_EXPANSION_RATIO = 1000

@dataclass(frozen=True)
class ClaimCheck:
    """What a reference payload carries: where the original is and how to restore it."""

    key: str
    sha256: str
    stored_size: int
    original_size: int
    compression: str

    def to_payload(self) -> Payload:
        body = {
            "v": REFERENCE_VERSION,
            "key": self.key,
            "sha256": self.sha256,
            "stored_size": self.stored_size,
            "original_size": self.original_size,
            "compression": self.compression,
        }
        data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return Payload(metadata={"encoding": REFERENCE_ENCODING}, data=data)

    @classmethod
    def from_payload(cls, payload: Payload, *, prefix: str = KEY_PREFIX) -> ClaimCheck:
        """The reference in ``payload``; :class:`ClaimCheckError` if it is malformed.

        The key must be the content key of the sha-256 under ``prefix``: a forged
        reference cannot make the codec (or the codec server) read any other blob.
        """
        if len(payload.data) > MAX_REFERENCE_BYTES:
            raise ClaimCheckError(
                f"claim-check reference is {len(payload.data)} bytes, more than the {MAX_REFERENCE_BYTES} "
                f"a reference may be: {payload.data[:80]!r}"
            )
        try:
            body = json.loads(payload.data)
        except (ValueError, RecursionError):
            raise ClaimCheckError(f"claim-check reference is not JSON: {payload.data[:80]!r}") from None
        if not isinstance(body, dict):
            raise ClaimCheckError(f"claim-check reference is not a JSON object: {payload.data[:80]!r}")
        if body.get("v") != REFERENCE_VERSION:
            raise ClaimCheckError(
                f"claim-check reference version {body.get('v')!r} is not supported (this reader knows "
                f"{REFERENCE_VERSION}); upgrade bulkorder"
            )
        key, sha, stored, original, compression = (
            body.get(name) for name in ("key", "sha256", "stored_size", "original_size", "compression")
        )
        where = f"claim-check reference to {key!r}"
        if not isinstance(sha, str) or not isinstance(key, str):
            raise ClaimCheckError(f"{where}: 'key' and 'sha256' must be strings")
        scope = key_scope(key, prefix)
        try:
            expected_key = content_key(sha, prefix if scope is None else scoped_prefix(prefix, scope))
        except InvalidBlobKeyError as exc:
            raise ClaimCheckError(f"{where}: {exc}") from None
        if key != expected_key:
            raise ClaimCheckError(f"{where}: key must be {expected_key!r}, the content key of its sha-256")
        for name, value in (("stored_size", stored), ("original_size", original)):
            if type(value) is not int or not 0 <= value <= MAX_ORIGINAL_SIZE:
                raise ClaimCheckError(f"{where}: {name} {value!r} is not a size in bytes")
        if not isinstance(compression, str) or compression not in COMPRESSIONS:
            raise ClaimCheckError(f"{where}: unknown compression {compression!r} (known: {sorted(COMPRESSIONS)})")
        if compression == COMPRESSION_NONE and stored != original:
            raise ClaimCheckError(f"{where}: uncompressed, yet stored_size {stored} is not original_size {original}")
        if compression == COMPRESSION_ZSTD and original > MAX_EXPANSION_RATIO * stored:
            raise ClaimCheckError(
                f"{where}: promises {original} bytes from {stored} stored, an expansion above the limit of "
                f"{MAX_EXPANSION_RATIO}x"
            )
        return cls(key, sha, stored, original, compression)


#: The ``encoding`` of a payload kept inline, compressed: over the threshold as it was, at
#: or under it once compressed, so it costs Temporal no more than an uncompressed payload
#: at the threshold and makes no blob-store request at all.
INLINE_ENCODING = b"binary/bulkorder-zstd"
#: Metadata of an inline payload: its serialized size before compression, in ASCII digits.
INLINE_SIZE_KEY = "bulkorder-original-size"


def inline_original_size(payload: Payload) -> int:
    """The size an inline compressed payload claims to restore to, checked like a
    reference's: digits only, within protobuf's limit and :data:`MAX_EXPANSION_RATIO`."""
    text = payload.metadata.get(INLINE_SIZE_KEY, b"")
    where = f"inline compressed payload ({len(payload.data)} bytes)"
    if not (0 < len(text) <= 10 and text.isdigit()):
        raise ClaimCheckError(f"{where}: {INLINE_SIZE_KEY} {text[:20]!r} is not a size in bytes")
    size = int(text)
    if size > MAX_ORIGINAL_SIZE or size > MAX_EXPANSION_RATIO * len(payload.data):
        raise ClaimCheckError(
            f"{where}: promises {size} bytes, above the limit of {MAX_EXPANSION_RATIO}x its size or {MAX_ORIGINAL_SIZE}"
        )
    return size


def is_inline(payload: Payload) -> bool:
    """True if ``payload`` is kept inline, compressed, by the claim-check codec."""
    return payload.metadata.get("encoding") == INLINE_ENCODING


def scoped_prefix(prefix: str, workflow_id: str) -> str:
    """Where the payloads of workflow ``workflow_id`` are stored (it must be an order's)."""
    if not SCOPE_PATTERN.fullmatch(workflow_id):
        raise ClaimCheckError(f"workflow ID {workflow_id[:80]!r} cannot scope claim-check payloads")
    return f"{prefix}/{SCOPE_SEGMENT}/{workflow_id}"


def key_scope(key: str, prefix: str = KEY_PREFIX) -> str | None:
    """The workflow ID a scoped payload key names (``None`` for an unscoped key). The
    segment must be an order workflow ID, matched whole."""
    head = f"{prefix}/{SCOPE_SEGMENT}/"
    if not key.startswith(head):
        return None
    scope = key[len(head) :].split("/", 1)[0]
    if not SCOPE_PATTERN.fullmatch(scope):
        raise ClaimCheckError(f"claim-check key {key[:120]!r}: {scope[:80]!r} is not an order workflow ID")
    return scope


def is_reference(payload: Payload) -> bool:
    """True if ``payload`` is a claim-check reference (it must never be wrapped again)."""
    return payload.metadata.get("encoding") == REFERENCE_ENCODING
