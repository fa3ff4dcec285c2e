"""``bulkorder keys``: the encryption keys (docs/data_protection.md).

- ``keys list``: the keyring's key-encryption keys (KEKs), which is active, and how many
  data keys each wraps (alone: a KEK that wraps none alone may be removed).
- ``keys rotate``: a new KEK becomes active (local keyring file; with KMS, the configured
  ``BULKORDER_KMS_KEY_ID`` is the new one), then every data key is rewrapped by it. No item
  byte is rewritten; old KEKs stay, so processes not restarted yet still read. Idempotent:
  after a failure, run ``keys rotate --rewrap-only`` to finish.
"""

from __future__ import annotations

import argparse
import asyncio

from bulkorder.commands.output import print_json
from bulkorder.encryption import data_keys
from bulkorder.keyring_file import rotate_keyring_file
from bulkorder.settings import Settings
from bulkorder.storage.encryption.data_keys import DataKeys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("keys", help="list or rotate the encryption keys", description=__doc__)
    actions = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="key-encryption keys and the data keys each wraps")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=run_list)
    rotate = actions.add_parser("rotate", help="make a new key-encryption key active and rewrap every data key")
    rotate.add_argument("--json", action="store_true", help="print one JSON object")
    rotate.add_argument(
        "--rewrap-only", action="store_true", help="do not add a key: rewrap every data key with the active one"
    )
    rotate.set_defaults(handler=run_rotate)


def _fresh_keys(settings: Settings) -> DataKeys:
    # Not the process's cached instance: the keyring file is read again after a rotation.
    encryption = settings.encryption_settings
    return DataKeys(settings.blob_store.open(), encryption.keyring())


async def run_list(args: argparse.Namespace, settings: Settings) -> int:
    keys = data_keys(settings.encryption_settings, settings.blob_store)
    usage = await asyncio.to_thread(keys.usage)
    listed = [
        {
            "kek_id": kek_id,
            "active": kek_id == keys.keyring.active_id,
            "wraps": usage.wraps.get(kek_id, 0),
            "wraps_alone": usage.only.get(kek_id, 0),
        }
        for kek_id in keys.keyring.key_ids()
    ]
    unknown = sorted(set(usage.wraps) - set(keys.keyring.key_ids()))
    body = {"keyring": keys.keyring.describe(), "data_keys": usage.data_keys, "keks": listed, "unknown_keks": unknown}
    if args.json:
        print_json(body)
        return 0
    print(f"{body['keyring']}: {usage.data_keys:,} data keys")
    for entry in listed:
        mark = "active " if entry["active"] else "       "
        print(f"  {mark}{entry['kek_id']}  wraps {entry['wraps']:,} data keys ({entry['wraps_alone']:,} alone)")
    for kek_id in unknown:
        print(f"  MISSING {kek_id}  wraps data keys but is not in the keyring")
    return 0


async def run_rotate(args: argparse.Namespace, settings: Settings) -> int:
    encryption = settings.encryption_settings
    added = None
    if not args.rewrap_only and not encryption.kms_key_id:
        added = await asyncio.to_thread(rotate_keyring_file, encryption.keyring_path)
    keys = await asyncio.to_thread(_fresh_keys, settings)
    report = await asyncio.to_thread(keys.rewrap_all)
    body = {"added_kek": added, **report.to_dict()}
    if args.json:
        print_json(body)
    else:
        if added:
            print(f"new key-encryption key {added} is active")
        print(f"{report.rewrapped:,} data keys rewrapped by {report.kek_id} ({report.already:,} already were)")
    return 0



