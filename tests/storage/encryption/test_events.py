"""Events encrypted at rest; personal fields erasable order by order; old rows still read."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from bulkorder.domain.application import Orders
from bulkorder.domain.refs import BatchRef
from bulkorder.domain.summary import OrderChange
from bulkorder.storage.encryption.errors import DecryptionError
from bulkorder.storage.encryption.events import ERASED, EventProtection
from tests.fixtures.orders import sqlite_env
from tests.storage.encryption.helpers import folder_keys

OLD_STORE = Path(__file__).parents[2] / "domain" / "fixtures" / "events-0.1.0.sqlite"


def ref(batch_id: str) -> BatchRef:
    sha = (batch_id.encode().hex() * 64)[:64]
    return BatchRef(batch_id, f"batches/{sha[:2]}/{sha}", sha, 100, 10, 10, {"EUR": 1000})


def fill(orders: Orders, order_id: str, customer: str) -> None:
    orders.record(OrderChange(order_id, customer, create=True, batches=[ref(f"{order_id}-b{i}") for i in range(3)]))
    orders.record(OrderChange(order_id, cancel_reason=f"{customer} moved to Springfield"))


def raw_rows(path: Path) -> bytes:
    with sqlite3.connect(path) as db:
        rows = [row[0] for row in db.execute("SELECT state FROM stored_events")]
        rows += [row[0] for row in db.execute("SELECT state FROM stored_snapshots")]
    return b"".join(bytes(r) for r in rows)


def test_event_bodies_and_personal_fields_hold_nothing_readable(tmp_path: Path) -> None:
    protection = EventProtection(folder_keys(tmp_path))
    orders = Orders(env=sqlite_env(tmp_path / "events.sqlite"), protection=protection)
    fill(orders, "order-1", "customer-alice")
    stored = raw_rows(tmp_path / "events.sqlite")
    for secret in (b"customer-alice", b"Springfield", b"order-1-b0", b"EUR"):
        assert secret not in stored
    summary = orders.summary("order-1")
    assert summary.customer_id == "customer-alice" and summary.status == "cancelled"
    assert orders.get_order("order-1").cancel_reason == "customer-alice moved to Springfield"
    orders.close()


def test_destroying_an_orders_key_erases_its_personal_fields_and_keeps_its_record(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    orders = Orders(env=sqlite_env(tmp_path / "events.sqlite"), protection=EventProtection(keys))
    fill(orders, "order-erased", "customer-bob")
    fill(orders, "order-kept", "customer-carol")
    keys.destroy_order_key("order-erased")
    # A fresh process (no cached key) and this one read the same.
    for reader in (orders, Orders(env=sqlite_env(tmp_path / "events.sqlite"), protection=EventProtection(folder_keys(tmp_path)))):
        erased = reader.get_order("order-erased")
        assert erased.customer_id == ERASED and erased.cancel_reason == ERASED
        assert erased.item_count == 30 and erased.status == "cancelled"
        assert reader.get_order("order-kept").customer_id == "customer-carol"
    orders.close()


def test_snapshots_seal_their_personal_fields_too(tmp_path: Path) -> None:
    keys = folder_keys(tmp_path)
    orders = Orders(env=sqlite_env(tmp_path / "events.sqlite"), protection=EventProtection(keys))
    orders.record(OrderChange("order-s", "customer-dave", create=True, batches=[ref(f"s-{i}") for i in range(120)]))
    with sqlite3.connect(tmp_path / "events.sqlite") as db:
        assert db.execute("SELECT count(*) FROM stored_snapshots").fetchone()[0] >= 1
    assert b"customer-dave" not in raw_rows(tmp_path / "events.sqlite")
    keys.destroy_order_key("order-s")
    assert orders.get_order("order-s").customer_id == ERASED
    orders.close()


def test_the_0_1_0_store_still_loads_and_new_events_beside_it_are_sealed(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    shutil.copyfile(OLD_STORE, path)
    orders = Orders(env=sqlite_env(path), protection=EventProtection(folder_keys(tmp_path)))
    assert orders.summary("o-fulfilled").status == "fulfilled"
    assert orders.summary("o-cancelled").status == "cancelled"
    orders.record(OrderChange("o-new", "customer-erin", create=True, batches=[ref("n1")]))
    assert orders.summary("o-new").customer_id == "customer-erin"
    assert b"customer-erin" not in raw_rows(path)
    orders.close()


def test_a_tampered_event_row_is_a_decryption_error_naming_the_events_key(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    orders = Orders(env=sqlite_env(path), protection=EventProtection(folder_keys(tmp_path)))
    fill(orders, "order-t", "customer-frank")
    orders.close()
    with sqlite3.connect(path) as db:
        rowid, state = db.execute("SELECT rowid, state FROM stored_events ORDER BY rowid LIMIT 1").fetchone()
        state = bytearray(state)
        state[-3] ^= 0x10
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (bytes(state), rowid))
    reader = Orders(env=sqlite_env(path), protection=EventProtection(folder_keys(tmp_path)))
    with pytest.raises(DecryptionError, match="data key events"):
        reader.get_order("order-t")
    reader.close()


def test_encryption_off_writes_plain_events_and_reads_sealed_ones(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    keys = folder_keys(tmp_path)
    sealed = Orders(env=sqlite_env(path), protection=EventProtection(keys))
    fill(sealed, "order-a", "customer-gina")
    plain = Orders(env=sqlite_env(path), protection=EventProtection(keys, encrypt=False))
    fill(plain, "order-b", "customer-hal")
    assert b"customer-hal" in raw_rows(path) and b"customer-gina" not in raw_rows(path)
    assert plain.summary("order-a").customer_id == "customer-gina"
    sealed.close()
    plain.close()
