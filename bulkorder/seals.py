"""The deployment's ref-seal secret: where it comes from, and the sealer built from it.

Every process of one deployment that writes or records batches (importers, services,
workers) must share the secret, so that a worker believes the counters of refs its own
writers sealed and checks every other ref against its blob (``bulkorder.storage.ref_proof``).

- ``BULKORDER_REF_SECRET``: the current secret (at least 16 bytes; 32 random bytes as
  hex is a good one). ``BULKORDER_REF_SECRETS_PREVIOUS``: comma-separated secrets whose
  seals are still accepted (rotation).
- Unset: the secret file ``<BULKORDER_HOME>/ref-secret``, created on first use with 32
  random bytes, mode 0600. Right for the embedded stack and for processes sharing one
  home; a deployment whose processes run on several machines sets the variable.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from bulkorder.domain.seal import MIN_SECRET_BYTES, RefSealer
from bulkorder.secret_files import create_private_file, read_private_file

SECRET_FILE = "ref-secret"


class SealSecretError(ValueError):
    """The seal secret setting or file is unusable; the message names which."""


@dataclass(frozen=True)
class SealSettings:
    secret: str | None = field(default=None, repr=False)
    previous: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SealSettings:
        secret = env.get("BULKORDER_REF_SECRET") or None
        previous = tuple(s.strip() for s in env.get("BULKORDER_REF_SECRETS_PREVIOUS", "").split(",") if s.strip())
        for name, value in [("BULKORDER_REF_SECRET", secret), *[("BULKORDER_REF_SECRETS_PREVIOUS", p) for p in previous]]:
            if value is not None and len(value.encode()) < MIN_SECRET_BYTES:
                raise SealSecretError(f"{name} is too short: a seal secret needs at least {MIN_SECRET_BYTES} bytes")
        return cls(secret=secret, previous=previous)

    def sealer(self, home: Path) -> RefSealer:
        secret = self.secret.encode() if self.secret else home_secret(home, SECRET_FILE, "ref-seal secret")
        return RefSealer(secret, [p.encode() for p in self.previous])


def home_secret(home: Path, file_name: str, what: str, error: type[ValueError] = SealSecretError) -> bytes:
    """The secret in ``<home>/<file_name>``, created once (32 random bytes as hex, mode
    0600, atomically) if missing; refused (``error``, naming ``what``) if it is not this
    user's alone or holds fewer than 16 bytes. The ref-seal secret's mechanism, shared
    with the identity secret (``bulkorder.identity_secret``)."""
    path = home / file_name
    create_private_file(path, lambda: secrets.token_hex(32).encode(), what, error)
    value = read_private_file(path, what, 1024, error).strip()
    if len(value) < MIN_SECRET_BYTES:
        raise error(f"the {what} file {path} holds fewer than {MIN_SECRET_BYTES} bytes")
    return value
