"""Encryption at rest: keyrings (KEKs), per-order data keys (DEKs), the envelope format,
and the hooks that seal blobs, Temporal payloads and events. See docs/data_protection.md."""
