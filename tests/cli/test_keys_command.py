"""``bulkorder keys list`` and ``keys rotate``: a new active KEK, every data key rewrapped."""

from __future__ import annotations

import json
from pathlib import Path

from bulkorder.domain.sample_items import generate_items
from bulkorder.settings import Settings
from bulkorder.storage.batches import BatchStore
from tests.cli.helpers import cli_env, run_cli


async def test_rotate_makes_a_new_kek_active_rewraps_every_data_key_and_keeps_the_data_readable(tmp_path: Path) -> None:
    env = cli_env(tmp_path, {"BULKORDER_KEYRING": str(tmp_path / "keyring")})
    settings = Settings.from_env(env)
    store = BatchStore(settings.blob_store.open(), protection=settings.blob_protection())
    items = list(generate_items(100))
    refs = [store.write(items, order_id=f"order-{i}") for i in range(3)]

    listed = await run_cli("keys", "list", "--json", env=env)
    assert listed.code == 0, listed.stderr
    before = json.loads(listed.stdout)
    [old] = before["keks"]
    assert old["active"] and before["data_keys"] == 4 and old["wraps_alone"] == 4  # index + three orders

    rotated = await run_cli("keys", "rotate", "--json", env=env)
    assert rotated.code == 0, rotated.stderr
    report = json.loads(rotated.stdout)
    assert report["added_kek"] == report["kek_id"] != old["kek_id"] and report["rewrapped"] == 4
    again = await run_cli("keys", "rotate", "--rewrap-only", "--json", env=env)
    assert json.loads(again.stdout)["rewrapped"] == 0

    after = json.loads((await run_cli("keys", "list", "--json", env=env)).stdout)
    by_id = {k["kek_id"]: k for k in after["keks"]}
    assert by_id[report["kek_id"]]["active"] and by_id[old["kek_id"]]["wraps_alone"] == 0
    text = await run_cli("keys", "list", env=env)
    assert text.code == 0 and f"active {report['kek_id']}" in text.stdout
    # The keyring file holds keys; no key material is ever printed.
    material = json.loads((tmp_path / "keyring").read_text())["keys"][old["kek_id"]]["key"]
    assert all(material not in out for out in (listed.stdout, rotated.stdout, text.stdout))
    assert [store.read(ref) for ref in refs] == [items] * 3


async def test_a_keyring_others_can_read_is_refused_with_exit_1(tmp_path: Path) -> None:
    env = cli_env(tmp_path, {"BULKORDER_KEYRING": str(tmp_path / "keyring")})
    (tmp_path / "keyring").write_text("{}")
    (tmp_path / "keyring").chmod(0o644)
    refused = await run_cli("keys", "list", env=env)
    assert refused.code == 1 and "readable by it alone" in refused.stderr
