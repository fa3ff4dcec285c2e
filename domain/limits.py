"""Money and quantity bounds every encoding and column can hold (standard library only).

msgpack, SQLite and PostgreSQL integers are 64-bit (about 9.22e18). One item's quantity x
unit amount, and every sum of them (a batch's and an order's per-currency totals, and so
every per-SKU sum) stay at or below these; what would pass them is refused when it is
added, naming the item or batch. Two bounded values added stay below 2**63, so no check
itself can overflow anywhere.
"""

MAX_LINE_TOTAL = 10**18
MAX_ORDER_TOTAL = 10**18
MAX_ORDER_QUANTITY = 10**18
