"""The stored form of a data key: key IDs bulkorder makes, and the small JSON object
``keys/data/<key ID>`` (or a rewrap) that holds a key wrapped by a KEK.

Read from a hostile store: an object is bounded (:data:`MAX_KEY_OBJECT_BYTES`) and must
name the key ID it was read for, so a key object copied to another key's path is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from bulkorder.storage.encryption.errors import DataKeyDestroyedError, DataKeyNotFoundError, EnvelopeFormatError
from bulkorder.storage.encryption.keyring import WrappedKey

#: The named deployment keys.
INDEX_KEY_ID = "index"
EVENTS_KEY_ID = "events"
PAYLOADS_KEY_ID = "payloads"
#: Blobs written without naming their order (library callers of ``BatchStore.write``
#: without ``order_id``): sealed, but not erasable order by order.
SHARED_KEY_ID = "shared"
NAMED_KEY_IDS = frozenset({INDEX_KEY_ID, EVENTS_KEY_ID, PAYLOADS_KEY_ID, SHARED_KEY_ID})
#: An order's data key ID: 32 hex digits of a keyed hash (``DataKeys.aggregate_key_id``).
_ORDER_KEY_ID = re.compile(r"[0-9a-f]{32}")
#: A wrapped-key object is a few hundred bytes: anything larger is not one.
MAX_KEY_OBJECT_BYTES = 16 * 1024
FORMAT = 1


def check_key_id(key_id: str) -> None:
    if key_id not in NAMED_KEY_IDS and not _ORDER_KEY_ID.fullmatch(key_id):
        # Not a key ID bulkorder makes (a forged envelope or payload metadata): never a
        # path to look up in the store.
        raise DataKeyNotFoundError(f"data key {key_id[:80]!r} is not a key ID bulkorder makes", key_id[:80])


def destroyed_error(key_id: str) -> DataKeyDestroyedError:
    return DataKeyDestroyedError(
        f"data key {key_id} was destroyed (the order was erased): its data is unreadable for good", key_id
    )


def key_object(key_id: str, wrapped: WrappedKey) -> bytes:
    return json.dumps({"format": FORMAT, "data_key_id": key_id, **wrapped.to_json()}, sort_keys=True).encode()


def parse_key_object(data: bytes, key_id: str, where: str) -> WrappedKey:
    try:
        body = json.loads(data)
        if body.get("format") != FORMAT or body.get("data_key_id") != key_id:
            raise ValueError("wrong format or data key ID")
        kek_id, wrapped = body["kek_id"], base64.b64decode(body["wrapped"], validate=True)
        if not isinstance(kek_id, str) or not kek_id:
            raise ValueError("no KEK ID")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise EnvelopeFormatError(f"wrapped data key {where} is malformed: {exc}", key_id) from None
    return WrappedKey(kek_id, wrapped)
