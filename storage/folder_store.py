"""A blob store in a local folder: the embedded default, and what tests use.

Each blob is one file at ``root/<key>``. Writes go to a temporary file in the target's
directory, which is then hard-linked into place: ``link`` refuses to replace an existing
file, so of any number of threads or processes putting the same key exactly one wins and
reports ``True``, and no reader ever sees a partly written blob. Filesystems without hard
links fall back to ``os.replace`` (still atomic; two racing writers may then both report
``True``, harmless because a key always names the same content).

Durability: by default each new file is fsynced before it is linked into place, and its
directory after (a new fan-out directory in its parent too), so a blob ``put`` reported
is on disk even if the machine loses power right after. A torn or corrupt file already at
a content-addressed key (a crash of an older, non-fsyncing writer; a damaged disk) is
detected on ``put``, which hashes the file there and atomically replaces it if it does
not hold the key's content.

Symlinks: every path is walked one directory at a time from the root with ``O_NOFOLLOW``
(``openat``), so no operation follows a symlink inside the blob root, whether it is the
blob's file or any directory on its path; such a key is refused with
:class:`~bulkorder.storage.errors.InvalidBlobKeyError`. (The root itself may be a symlink: it is
resolved once, when the store is made.) This needs POSIX ``dir_fd`` support (Linux, macOS).

Temporary files start with ``.``, which no key segment may, so they never clash with
keys and :meth:`FolderBlobStore.iter_keys` never lists them.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from bulkorder.storage.blob_store import (
    BlobInfo,
    check_max_size,
    expected_sha256,
    refuse_if_larger,
    refuse_if_read_past,
    sha256_hex,
    validate_key,
    verify,
)
from bulkorder.storage.errors import BlobIntegrityError, BlobNotFoundError, InvalidBlobKeyError, StorageError

logger = logging.getLogger(__name__)

_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# errno values meaning "this filesystem cannot hard-link": fall back to os.replace.
_NO_LINK = frozenset(
    code
    for code in (errno.EPERM, errno.EXDEV, errno.EMLINK, getattr(errno, "ENOTSUP", None), getattr(errno, "EOPNOTSUPP", None))
    if code is not None
)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
# O_NONBLOCK: opening a FIFO planted at a key must not hang the reader (it is then
# refused as not a regular file); regular files ignore the flag.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC


class _NoSuchBlob(Exception):
    """Internal: a directory on the key's path is missing or is a file."""


class FolderBlobStore:
    """Blobs as files under ``root``. Safe for many threads and processes at once.

    ``fsync`` (default ``True``) flushes each new blob and its directory to disk before
    ``put`` returns. Turn it off only for benchmarks and throw-away data: without it, a
    power loss can leave a torn file at a key (which the next ``put`` of that key
    repairs, but a reader meets first).
    """

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        path = Path(root).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        # Resolve once: the root may be a symlink; nothing below it may.
        self._root = Path(os.path.realpath(path))
        self._fsync = fsync

    @property
    def root(self) -> Path:
        return self._root

    @property
    def location(self) -> str:
        return f"folder {self._root}"

    def __repr__(self) -> str:
        return f"FolderBlobStore({str(self._root)!r})"

    def path_for(self, key: str) -> Path:
        """The file of ``key`` (for tools and tests; the store itself opens paths with
        ``openat``, never by this name)."""
        validate_key(key)
        return self._root.joinpath(*key.split("/"))

    # Walking a key's path without following symlinks.

    def _symlink_error(self, key: str, path: str) -> InvalidBlobKeyError:
        return InvalidBlobKeyError(
            f"blob key {key!r} in {self.location}: {path} is a symlink; symlinks inside the blob root are refused"
        )

    @contextmanager
    def _directory(self, key: str, *, create: bool) -> Iterator[tuple[int, str]]:
        """An fd of the directory that holds ``key``'s file, and the file's name.

        Opened one component at a time with ``O_NOFOLLOW``: a symlink anywhere on the
        path raises :class:`InvalidBlobKeyError`. ``create`` makes missing directories
        (fsynced into their parents); without it a missing one raises ``_NoSuchBlob``.
        """
        parts = validate_key(key).split("/")
        fd = os.open(self._root, _DIR_FLAGS)
        try:
            for depth, part in enumerate(parts[:-1]):
                child = self._enter(fd, part, key, "/".join(parts[: depth + 1]), create)
                os.close(fd)
                fd = child
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def _enter(self, parent: int, name: str, key: str, shown: str, create: bool) -> int:
        """A new fd of directory ``name`` in ``parent``."""
        while True:
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    raise _NoSuchBlob from None
                try:
                    os.mkdir(name, 0o777, dir_fd=parent)
                except FileExistsError:
                    continue  # made by another writer meanwhile
                if self._fsync:
                    os.fsync(parent)  # the new directory's entry in its parent
            except (NotADirectoryError, OSError) as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                if stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode):
                    raise self._symlink_error(key, shown) from None
                if create:
                    raise StorageError(
                        f"cannot write blob {key!r} to {self.location}: {shown} is a file, not a directory"
                    ) from None
                raise _NoSuchBlob from None

    def _lstat(self, directory: int, name: str) -> os.stat_result | None:
        try:
            return os.lstat(name, dir_fd=directory)
        except FileNotFoundError:
            return None

    # The BlobStore protocol.

    def put(self, key: str, data: bytes) -> bool:
        """Store ``data``; ``False`` if the key already holds it.

        A content-addressed key must be given its own content (else
        :class:`BlobIntegrityError`, nothing written). A file already at such a key
        that does not hash to it (torn, corrupt) is replaced atomically: ``True``.
        """
        validate_key(key)
        expected = expected_sha256(key)
        if expected is not None:
            actual = sha256_hex(data)
            if actual != expected:
                raise BlobIntegrityError(key, expected, actual, self.location, context="refusing to write")
        try:
            with self._directory(key, create=True) as (directory, name):
                replace = self._must_replace(directory, name, key, expected)
                if replace is None:
                    return False
                return self._write(directory, name, data, replace)
        except OSError as exc:
            raise StorageError(f"cannot write blob {key!r} to {self.location}: {exc}") from exc

    def _must_replace(self, directory: int, name: str, key: str, expected: str | None) -> bool | None:
        """``False``: no file there (write one); ``True``: a corrupt one (replace it);
        ``None``: the key already holds its blob (nothing to do)."""
        existing = self._lstat(directory, name)
        if existing is None:
            return False
        if stat.S_ISLNK(existing.st_mode):
            raise self._symlink_error(key, key)
        if stat.S_ISDIR(existing.st_mode):
            raise StorageError(f"cannot write blob {key!r} to {self.location}: {self._root / key} is a directory")
        if not stat.S_ISREG(existing.st_mode):
            raise StorageError(f"cannot write blob {key!r} to {self.location}: {key} is not a regular file")
        if expected is None:
            return None  # a plain key: written once, kept
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=directory)
        except FileNotFoundError:
            return False  # deleted since the lstat (gc): write it afresh
        with os.fdopen(fd, "rb") as file:
            actual = hashlib.file_digest(file, "sha256").hexdigest()
        if actual == expected:
            return None
        logger.warning(
            "blob %r in %s is torn or corrupt (sha-256 %s): replacing it", key, self.location, actual
        )
        return True

    def _write(self, directory: int, name: str, data: bytes, replace: bool) -> bool:
        tmp = f".tmp-{uuid.uuid4().hex}"
        try:
            # 0o666 lets the umask decide permissions (mkstemp would force 0600).
            fd = os.open(tmp, _WRITE_FLAGS, 0o666, dir_fd=directory)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                if self._fsync:
                    file.flush()
                    os.fsync(file.fileno())
            if replace:
                os.replace(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
            else:
                try:
                    os.link(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
                except FileExistsError:
                    return False
                except OSError as exc:
                    if exc.errno not in _NO_LINK:
                        raise
                    if self._lstat(directory, name) is not None:
                        return False
                    os.replace(tmp, name, src_dir_fd=directory, dst_dir_fd=directory)
            if self._fsync:
                os.fsync(directory)
            return True
        finally:
            try:
                os.unlink(tmp, dir_fd=directory)
            except FileNotFoundError:
                pass  # replaced, or never created

    def get(self, key: str, *, sha256: str | None = None, max_size: int | None = None) -> bytes:
        check_max_size(max_size, key)
        try:
            with self._directory(key, create=False) as (directory, name):
                try:
                    fd = os.open(name, _READ_FLAGS, dir_fd=directory)
                except FileNotFoundError:
                    raise _NoSuchBlob from None
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        raise self._symlink_error(key, key) from None
                    raise
            try:
                info = os.fstat(fd)
                if stat.S_ISDIR(info.st_mode):
                    raise _NoSuchBlob
                if not stat.S_ISREG(info.st_mode):
                    raise StorageError(f"cannot read blob {key!r} from {self.location}: not a regular file")
                refuse_if_larger(key, info.st_size, max_size, self.location)
            except BaseException:
                os.close(fd)
                raise
            with os.fdopen(fd, "rb") as file:
                # Bounded even if the file grows after the stat: max_size + 1 reveals it.
                data = file.read() if max_size is None else file.read(max_size + 1)
        except _NoSuchBlob:
            raise BlobNotFoundError(key, self.location) from None
        except OSError as exc:
            raise StorageError(f"cannot read blob {key!r} from {self.location}: {exc}") from exc
        refuse_if_read_past(key, data, max_size, self.location)
        verify(key, data, self.location, sha256=sha256)
        return data

    def _stat(self, key: str) -> os.stat_result | None:
        """The blob file's stat, ``None`` if there is no blob; symlinks refused."""
        try:
            with self._directory(key, create=False) as (directory, name):
                info = self._lstat(directory, name)
        except _NoSuchBlob:
            return None
        except OSError as exc:
            raise StorageError(f"cannot look up blob {key!r} in {self.location}: {exc}") from exc
        if info is not None and stat.S_ISLNK(info.st_mode):
            raise self._symlink_error(key, key)
        return info if info is not None and stat.S_ISREG(info.st_mode) else None

    def exists(self, key: str) -> bool:
        return self._stat(key) is not None

    def size(self, key: str) -> int:
        info = self._stat(key)
        if info is None:
            raise BlobNotFoundError(key, self.location)
        return info.st_size

    def delete(self, key: str) -> None:
        try:
            with self._directory(key, create=False) as (directory, name):
                info = self._lstat(directory, name)
                if info is None or stat.S_ISDIR(info.st_mode):
                    return
                if stat.S_ISLNK(info.st_mode):
                    raise self._symlink_error(key, key)
                os.unlink(name, dir_fd=directory)
        except (_NoSuchBlob, FileNotFoundError):
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete blob {key!r} from {self.location}: {exc}") from exc

    def delete_many(self, keys: Iterable[str]) -> int:
        count = 0
        for key in keys:
            self.delete(key)
            count += 1
        return count

    def iter_blob_infos(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Like :meth:`iter_keys`, with each file's size and modification time (one
        ``lstat`` per file, already made by ``scandir`` on most systems)."""
        for key, entry in self._entries(prefix):
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted since the directory was read
            yield BlobInfo(key, info.st_size, info.st_mtime)

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        for key, _ in self._entries(prefix):
            yield key

    def _entries(self, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        head, _, _ = prefix.rpartition("/")
        if head:
            try:
                validate_key(head)
            except InvalidBlobKeyError:
                return  # no valid key can start with an invalid path
        start = self._root
        for part in head.split("/") if head else ():
            start = start / part
            if start.is_symlink():
                return  # symlinks are neither listed nor followed
        yield from self._walk(start, head, prefix)

    def _walk(self, directory: Path, key_prefix: str, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        # scandir, not os.walk: d_type answers "file or dir?" without a stat per entry,
        # and symlinks are neither listed nor followed.
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if not _SEGMENT.match(entry.name):
                continue  # temporary files, and anything that is not a key
            key = f"{key_prefix}/{entry.name}" if key_prefix else entry.name
            if not key.startswith(prefix):
                # The walk starts in the prefix's directory, so a non-matching entry
                # cannot hold matching keys either: prune it.
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), key, prefix)
            elif entry.is_file(follow_symlinks=False):
                yield key, entry
