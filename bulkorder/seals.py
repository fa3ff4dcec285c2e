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

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from bulkorder.domain.seal import MIN_SECRET_BYTES, RefSealer

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
    0600) if missing. Refused (``error``, naming ``what``) if another user owns it or
    group or others may read it, or it holds fewer than 16 bytes. Shared by the ref-seal
    secret and the identity secret (``bulkorder.identity_secret``)."""
    path = home / file_name
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create {home} for the {what}: {exc.strerror}") from None
    if not path.exists():
        _create_secret_file(path, what, error)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise error(f"cannot read the {what} file {path}: {exc.strerror}") from None
    with os.fdopen(fd) as source:
        info = os.fstat(source.fileno())
        # A secret anyone else could read or plant is no secret: refuse it.
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise error(
                f"the {what} file {path} must belong to this user and be readable by it alone "
                f"(mode 0600; it is {info.st_mode & 0o777:04o})"
            )
        value = source.read(1024).strip()
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise error(f"the {what} file {path} holds fewer than {MIN_SECRET_BYTES} bytes")
    return value.encode()


def _create_secret_file(path: Path, what: str, error: type[ValueError]) -> None:
    """Write a new secret whole under a temporary name, then link it into place: a reader
    never sees a half-written file, and of two processes racing, the first link wins and
    both read its secret."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: its secret is the one
    except OSError as exc:
        raise error(f"cannot create the {what} file {path}: {exc.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)
