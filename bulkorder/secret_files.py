"""Secret files in the bulkorder home: made once atomically, mode 0600, refused when anyone
else may read them. Shared by the ref-seal secret (``bulkorder.seals``) and the local
keyring (``bulkorder.keyring_file``)."""

from __future__ import annotations

import fcntl
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def read_private_file(path: Path, what: str, max_bytes: int, error: type[Exception]) -> bytes:
    """The bytes of ``path`` (at most ``max_bytes``), which must belong to this user and be
    readable by it alone; ``error`` (naming ``what`` and the path) otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise error(f"cannot read the {what} file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        # A secret anyone else could read or plant is no secret: refuse it.
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise error(
                f"the {what} file {path} must belong to this user and be readable by it alone "
                f"(mode 0600; it is {info.st_mode & 0o777:04o})"
            )
        data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise error(f"the {what} file {path} is larger than {max_bytes} bytes")
    return data


def _write_temporary(path: Path, content: bytes) -> Path:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    return temporary


def create_private_file(path: Path, content: Callable[[], bytes], what: str, error: type[Exception]) -> None:
    """Make ``path`` with ``content()`` unless it exists. Written whole under a temporary
    name, then linked into place: a reader never sees a half-written file, and of two
    processes racing, the first link wins and both read its content."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return
        temporary = _write_temporary(path, content())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: its content is the one
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        raise error(f"cannot create the {what} file {path}: {exc.strerror}") from None


def replace_private_file(path: Path, content: bytes, what: str, error: type[Exception]) -> None:
    """Replace ``path`` whole (atomic rename, mode 0600); hold :func:`locked` around the
    read-modify-write so two writers cannot lose each other's change."""
    try:
        temporary = _write_temporary(path, content)
        try:
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        raise error(f"cannot write the {what} file {path}: {exc.strerror}") from None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` for the duration (one writer at a time)."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
