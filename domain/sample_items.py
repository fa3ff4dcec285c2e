"""Realistic generated order lines, for the demo, tests and benchmarks.

Each item has ~25 fields (4 top-level, a 2-field price, ~20 attributes), drawn from a
catalog of SKUs so that a large order repeats SKUs like a real one does. Deterministic:
the same ``seed`` and ``start`` give the same items, which lets a benchmark compare
systems on identical data and a test recompute what it expects.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

_COLORS = ["black", "white", "red", "navy", "green", "grey", "beige", "yellow"]
_SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
_MATERIALS = ["cotton", "steel", "oak", "polymer", "glass", "aluminium", "wool"]
_BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark"]
_CATEGORIES = ["apparel", "hardware", "furniture", "kitchen", "garden", "toys", "office"]
_WAREHOUSES = ["AMS-1", "FRA-2", "MAD-1", "WAW-3", "DUB-1"]
_COUNTRIES = ["NL", "DE", "ES", "PL", "IE", "CN", "US", "VN"]
_CURRENCIES = ["EUR", "EUR", "EUR", "USD", "GBP"]

CATALOG_SIZE = 50_000


def sample_item(index: int, rng: random.Random) -> dict[str, Any]:
    sku_number = rng.randrange(CATALOG_SIZE)
    return {
        "sku": f"SKU-{sku_number:06d}",
        "quantity": rng.randint(1, 24),
        "unit_price": {"amount": 99 + (sku_number * 37) % 25_000, "currency": _CURRENCIES[sku_number % 5]},
        "name": f"{_BRANDS[sku_number % 7]} {_CATEGORIES[sku_number % 7]} item {sku_number}",
        "attributes": {
            "color": _COLORS[sku_number % 8],
            "size": _SIZES[sku_number % 6],
            "material": _MATERIALS[sku_number % 7],
            "brand": _BRANDS[sku_number % 7],
            "category": _CATEGORIES[sku_number % 7],
            "weight_g": 50 + (sku_number * 13) % 20_000,
            "length_mm": 10 + sku_number % 900,
            "width_mm": 10 + (sku_number * 7) % 600,
            "height_mm": 5 + (sku_number * 11) % 400,
            "ean": f"{4_000_000_000_000 + sku_number * 7919:013d}",
            "hs_code": f"{6100 + sku_number % 900}.{sku_number % 100:02d}",
            "origin_country": _COUNTRIES[sku_number % 8],
            "warehouse": _WAREHOUSES[index % 5],
            "lot": f"L{rng.randrange(10**6):06d}",
            "line_number": index,
            "fragile": sku_number % 11 == 0,
            "hazmat": sku_number % 97 == 0,
            "discount_pct": round(rng.random() * 30, 2),
            "gift_wrap": rng.random() < 0.1,
            "note": None if rng.random() < 0.8 else "deliver to dock 4",
        },
    }


def generate_items(count: int, *, seed: int = 7, start: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` items numbered from ``start``; chunked so any slice can be regenerated."""
    chunk = 1_000
    index = start
    end = start + count
    while index < end:
        rng = random.Random(seed * 1_000_003 + index // chunk)
        # Skip within the chunk so generate_items(n, start=k) equals a slice of the whole.
        for skipped in range(index - index // chunk * chunk):
            sample_item(index // chunk * chunk + skipped, rng)
        stop = min(end, (index // chunk + 1) * chunk)
        for position in range(index, stop):
            yield sample_item(position, rng)
        index = stop
