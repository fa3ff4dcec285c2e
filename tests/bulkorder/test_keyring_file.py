"""The local keyring file: made once, private, rotated without losing a key."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bulkorder.keyring_file import load_keyring_file, rotate_keyring_file
from bulkorder.storage.encryption.errors import KeyringError


def test_made_on_first_use_mode_0600_and_read_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "home" / "keyring"
    first = load_keyring_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_keyring_file(path).active_id == first.active_id
    body = json.loads(path.read_text())
    assert list(body["keys"]) == [first.active_id] and body["format"] == 1
    assert body["keys"][first.active_id]["key"] not in repr(first)


def test_concurrent_first_uses_agree_on_one_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    with ThreadPoolExecutor(8) as pool:
        actives = set(pool.map(lambda _: load_keyring_file(path).active_id, range(16)))
    assert len(actives) == 1


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_keyring_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keyring"
    load_keyring_file(path)
    os.chmod(path, mode)
    with pytest.raises(KeyringError, match="readable by it alone"):
        load_keyring_file(path)


@pytest.mark.parametrize(
    "content, problem",
    [("not json", "not a bulkorder keyring"), ('{"format": 2}', "format"), ('{"format": 1, "active": "x", "keys": {}}', "active key")],
)
def test_a_malformed_keyring_is_refused_naming_the_file(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "keyring"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(KeyringError, match=problem):
        load_keyring_file(path)


def test_concurrent_rotations_keep_every_key(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    original = load_keyring_file(path).active_id
    with ThreadPoolExecutor(4) as pool:
        added = set(pool.map(lambda _: rotate_keyring_file(path), range(8)))
    keyring = load_keyring_file(path)
    assert set(keyring.key_ids()) == added | {original} and keyring.active_id in added
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_process_started_before_a_rotation_reads_keys_wrapped_after_it(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    old_process = load_keyring_file(path)
    rotate_keyring_file(path)
    new_process = load_keyring_file(path)
    wrapped = new_process.wrap(b"k" * 32, "some-key")
    assert old_process.unwrap(wrapped, "some-key") == b"k" * 32  # it reloads the file once
