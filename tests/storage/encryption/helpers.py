"""A deployment's keys on a private folder: a keyring file and data keys in its blobs."""

from __future__ import annotations

from pathlib import Path

from bulkorder.keyring_file import load_keyring_file
from bulkorder.storage.encryption.data_keys import DataKeys
from bulkorder.storage.folder_store import FolderBlobStore


def folder_keys(tmp_path: Path) -> DataKeys:
    """A fresh process's view: keyring file ``tmp_path/keyring``, blobs ``tmp_path/blobs``."""
    return DataKeys(FolderBlobStore(tmp_path / "blobs"), load_keyring_file(tmp_path / "keyring"))
