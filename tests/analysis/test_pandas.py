"""The notebook path: an order's items in pandas in one call, with typed columns."""

from __future__ import annotations

import json

import pandas as pd
from pandas.api import types

from tests.fixtures.analysts import AnalystStore, items_digest, write_order


def test_an_orders_items_come_into_pandas_in_one_call(analyst_store: AnalystStore) -> None:
    written = write_order(analyst_store, "pandas-1", [300, 200])
    with analyst_store.analyst() as analyst:
        frame = analyst.item_table("pandas-1").to_pandas()  # the one call docs/analysts.md shows

    assert isinstance(frame, pd.DataFrame) and len(frame) == 500
    assert list(frame.columns) == ["sku", "quantity", "unit_price_amount", "unit_price_currency", "name", "attributes"]
    assert frame["quantity"].dtype == "int64" and frame["unit_price_amount"].dtype == "int64"
    assert isinstance(frame["unit_price_currency"].dtype, pd.CategoricalDtype)
    assert all(types.is_string_dtype(frame[column]) for column in ("sku", "name", "attributes"))
    back = [
        {
            "sku": row.sku,
            "quantity": row.quantity,
            "unit_price": {"amount": row.unit_price_amount, "currency": row.unit_price_currency},
            "name": row.name,
            "attributes": json.loads(row.attributes),
        }
        for row in frame.itertuples(index=False)
    ]
    expected = [{**item, "attributes": item.get("attributes") or {}} for item in written.items]
    assert items_digest(back) == items_digest(expected)
    # Money stays exact: whole minor units, summed per SKU without floats.
    per_sku = frame.assign(total=frame["quantity"] * frame["unit_price_amount"]).groupby("sku")["total"].sum()
    assert per_sku.dtype == "int64"
    assert int(per_sku.sum()) == sum(item["quantity"] * item["unit_price"]["amount"] for item in written.items)
