"""The local keyring file: the key-encryption keys (KEKs) of the embedded default.

``<BULKORDER_HOME>/keyring`` unless ``BULKORDER_KEYRING`` names another path. JSON::

    {"format": 1, "active": "kek-<16 hex>",
     "keys": {"kek-<16 hex>": {"key": "<base64 of 32 random bytes>", "created": "<ISO time>"}}}

Created on first use with one KEK (atomically, mode 0600: ``bulkorder.secret_files``),
refused when anyone but its owner may read it. :func:`rotate_keyring_file` adds a KEK and
makes it active, under a file lock so two rotations cannot lose a key. Keys are never
removed by bulkorder: a KEK stays until the operator removes it, after ``bulkorder keys
list`` shows that no data key is wrapped by it alone. Losing this file loses every order's
data: back it up (docs/data_protection.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bulkorder.secret_files import create_private_file, locked, read_private_file, replace_private_file
from bulkorder.storage.encryption.errors import KeyringError
from bulkorder.storage.encryption.keyring import KEK_BYTES, LocalKeyring

KEYRING_FILE = "keyring"
_FORMAT = 1
_MAX_BYTES = 1 << 20
_WHAT = "keyring"


def _new_key() -> tuple[str, dict[str, str]]:
    return "kek-" + secrets.token_hex(8), {
        "key": base64.b64encode(secrets.token_bytes(KEK_BYTES)).decode(),
        "created": datetime.now(timezone.utc).isoformat(),
    }


def _fresh_keyring() -> bytes:
    kek_id, entry = _new_key()
    return json.dumps({"format": _FORMAT, "active": kek_id, "keys": {kek_id: entry}}, indent=1).encode()


def _read(path: Path) -> dict[str, Any]:
    create_private_file(path, _fresh_keyring, _WHAT, KeyringError)
    data = read_private_file(path, _WHAT, _MAX_BYTES, KeyringError)
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != _FORMAT:
            raise ValueError(f"format {body.get('format') if isinstance(body, dict) else None!r}, expected {_FORMAT}")
        if not isinstance(body.get("keys"), dict) or body.get("active") not in body["keys"]:
            raise ValueError("its active key is not one of its keys")
    except ValueError as exc:
        raise KeyringError(f"the keyring file {path} is not a bulkorder keyring: {exc}") from None
    return body


def _keys(body: dict[str, Any], path: Path) -> tuple[dict[str, bytes], str]:
    keys: dict[str, bytes] = {}
    for kek_id, entry in body["keys"].items():
        try:
            material = base64.b64decode(entry["key"], validate=True)
        except (TypeError, KeyError, binascii.Error):
            raise KeyringError(f"the keyring file {path}: key {kek_id} is not base64", kek_id) from None
        if len(material) != KEK_BYTES:
            raise KeyringError(f"the keyring file {path}: key {kek_id} is not {KEK_BYTES} bytes", kek_id)
        keys[kek_id] = material
    return keys, body["active"]


def load_keyring_file(path: Path) -> LocalKeyring:
    """The keyring in ``path`` (made with one KEK on first use)."""
    keys, active = _keys(_read(path), path)
    return LocalKeyring(keys, active, reload=lambda: _keys(_read(path), path), where=f"keyring file {path}")


def rotate_keyring_file(path: Path) -> str:
    """Add a new KEK to ``path`` and make it the active one; returns its ID."""
    _read(path)  # made if missing, checked
    with locked(path):
        body = _read(path)
        kek_id, entry = _new_key()
        body["keys"][kek_id] = entry
        body["active"] = kek_id
        replace_private_file(path, json.dumps(body, indent=1).encode(), _WHAT, KeyringError)
    return kek_id
