"""Seals on refs: proof that bulkorder's own writer counted a batch's content.

Any Temporal client on the namespace can send a :class:`~bulkorder.domain.refs.BatchRef`, and its
counters (items, quantity, totals) decide what a customer pays. A writer that validated
and counted the items seals the ref: an HMAC-SHA256, keyed with the deployment's secret,
over every other field. The worker that records the ref checks the seal; a ref whose seal
does not verify is believed only after its claims were checked against the blob itself
(``bulkorder.storage.ref_proof``). Standard library only: the domain decides what a valid seal is.

A seal reads ``hs256:<key id>:<64 hex digits>``. The key ID (the first 16 hex digits of a
hash of the secret, never the secret) names the key, so a deployment can rotate: it seals
with its current secret and still accepts seals of the secrets it lists as previous.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import asdict, replace
from typing import Iterable

from bulkorder.domain.refs import BatchRef

SEAL_SCHEME = "hs256"
_SEAL = re.compile(r"hs256:[0-9a-f]{16}:[0-9a-f]{64}")
#: A secret shorter than this is refused: it could be guessed.
MIN_SECRET_BYTES = 16


class SealKeyError(ValueError):
    """A seal secret that cannot be used (too short, or none given)."""


def key_id(secret: bytes) -> str:
    """The public name of ``secret``: 16 hex digits of a domain-separated hash."""
    return hashlib.sha256(b"bulkorder ref seal key id\x00" + secret).hexdigest()[:16]


def _message(ref: BatchRef, scope: str) -> bytes:
    """What the MAC covers: every field but the seal, and the order the batch was written
    for (``scope``: its data key ID), so a seal minted for one order proves nothing in
    another's. ``scope=""`` is a batch of no order in particular, and the message seals
    made before scopes existed cover (they stay valid as such)."""
    fields = asdict(ref)
    fields.pop("seal", None)
    message = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return message if not scope else message + b"\x00scope:" + scope.encode("ascii")


class RefSealer:
    """Seals refs with the current secret; verifies seals of the current or previous ones."""

    def __init__(self, secret: bytes, previous: Iterable[bytes] = ()) -> None:
        secrets = [secret, *previous]
        for value in secrets:
            if not isinstance(value, bytes) or len(value) < MIN_SECRET_BYTES:
                raise SealKeyError(f"a ref seal secret must be at least {MIN_SECRET_BYTES} bytes")
        self._current = key_id(secret)
        self._keys = {key_id(value): value for value in secrets}

    def __repr__(self) -> str:  # never the secrets
        return f"RefSealer(current={self._current!r}, keys={sorted(self._keys)!r})"

    @property
    def current_key_id(self) -> str:
        return self._current

    def _mac(self, kid: str, ref: BatchRef, scope: str = "") -> str:
        return hmac.new(self._keys[kid], _message(ref, scope), hashlib.sha256).hexdigest()

    def seal(self, ref: BatchRef, scope: str = "") -> BatchRef:
        """``ref`` with its seal set (any earlier seal is replaced), bound to ``scope``: the
        data key ID of the order the batch was written for ("": no order in particular)."""
        if not isinstance(scope, str) or not scope.isascii():
            raise ValueError("a seal's scope is an ASCII key ID")
        return replace(ref, seal=f"{SEAL_SCHEME}:{self._current}:{self._mac(self._current, ref, scope)}")

    def check(self, ref: BatchRef, scope: str = "") -> str | None:
        """``None`` if ``ref``'s seal verifies for ``scope`` (the order it is recorded in) or
        for no order in particular, else why not (for a rejection's reason). A seal bound to
        another order does not verify: its ref was copied from that order."""
        return self._verify(ref, scope)[0]

    def verified_scope(self, ref: BatchRef, scope: str = "") -> str | None:
        """The scope ``ref``'s seal verifies for: ``scope`` itself, ``""`` (a seal of no
        order in particular: its batch's data key must then say whose it is), or ``None``."""
        reason, matched = self._verify(ref, scope)
        return matched if reason is None else None

    def _verify(self, ref: BatchRef, scope: str) -> tuple[str | None, str | None]:
        if not isinstance(ref.seal, str) or not ref.seal:
            return "the ref is not sealed", None
        if not _SEAL.fullmatch(ref.seal):
            return "the ref's seal is not of a known form", None
        _, kid, mac = ref.seal.split(":")
        if kid not in self._keys:
            return f"the ref is sealed with an unknown key {kid[:16]!r}", None
        scopes = [scope, ""] if scope and isinstance(scope, str) and scope.isascii() else [""]
        try:
            expected = [self._mac(kid, ref, each) for each in scopes]
        except (TypeError, ValueError):  # a hostile field no JSON holds: nothing was sealed
            return "the ref's seal does not match its fields", None
        # Both compared, always: the time taken says nothing about which one matched.
        matches = [hmac.compare_digest(mac, each) for each in expected]
        if not any(matches):
            return "the ref's seal does not match its fields", None  # or was made for another order
        return None, scopes[matches.index(True)]
