"""The deployment's identity secret: the key of the hash that names orders in Temporal.

Workflow IDs and aggregate IDs are a keyed hash of ``<customer>/<reference>``
(``bulkorder.domain.identity``), so Temporal never holds a customer ID in clear. Every process
of one deployment (services, importers, workers, relays, analysts) must hold the same
secret, and it must NEVER change: a new secret gives every order new IDs, and the
orders made under the old one are no longer found by name. There is no rotation.

- ``BULKORDER_IDENTITY_SECRET``: the secret (at least 16 bytes; 32 random bytes as hex).
- Unset: ``<BULKORDER_HOME>/identity-secret``, created once with 32 random bytes, mode
  0600, refused if group or others may read it (the mechanism of the ref-seal secret,
  ``bulkorder.seals.home_secret``). Back it up with the event store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from bulkorder.domain.identity import MIN_IDENTITY_KEY_BYTES, OrderIdentity
from bulkorder.seals import home_secret

IDENTITY_SECRET_VARIABLE = "BULKORDER_IDENTITY_SECRET"
IDENTITY_SECRET_FILE = "identity-secret"


class IdentitySecretError(ValueError):
    """The identity secret setting or file is unusable; the message names which."""


@dataclass(frozen=True)
class IdentitySettings:
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IdentitySettings:
        secret = env.get(IDENTITY_SECRET_VARIABLE) or None
        if secret is not None and len(secret.encode()) < MIN_IDENTITY_KEY_BYTES:
            raise IdentitySecretError(
                f"{IDENTITY_SECRET_VARIABLE} is too short: the identity secret needs at least "
                f"{MIN_IDENTITY_KEY_BYTES} bytes"
            )
        return cls(secret=secret)

    def identity(self, home: Path) -> OrderIdentity:
        key = self.secret.encode() if self.secret else home_secret(
            home, IDENTITY_SECRET_FILE, "identity secret", IdentitySecretError
        )
        return OrderIdentity(key)
