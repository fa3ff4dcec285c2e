"""A blob store in a local folder: the embedded default, and what tests use.

Each blob is one file at ``root/<key>``. Writes go to a temporary file in the target's
directory, which is then hard-linked into place: ``link`` refuses to replace an existing
file, so of any number of threads or processes putting the same key exactly one wins and
reports ``True``, and no reader ever sees a partly written blob. Filesystems without hard
links fall back to ``os.replace`` (still atomic; two racing writers may then both report
``True``, harmless because a key always names the same content).

Temporary files start with ``.``, which no key segment may, so they never clash with
keys and :meth:`FolderBlobStore.iter_keys` never lists them.
"""

from __future__ import annotations

import errno
import os
import re
import uuid
from pathlib import Path
from typing import Iterator

from storage.blob_store import validate_key, verify
from storage.errors import BlobNotFoundError, InvalidBlobKeyError, StorageError

_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# errno values meaning "this filesystem cannot hard-link": fall back to os.replace.
_NO_LINK = frozenset(
    code
    for code in (errno.EPERM, errno.EXDEV, errno.EMLINK, getattr(errno, "ENOTSUP", None), getattr(errno, "EOPNOTSUPP", None))
    if code is not None
)
_NOT_A_BLOB = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class FolderBlobStore:
    """Blobs as files under ``root``. Safe for many threads and processes at once.

    ``fsync=True`` flushes each blob and its directory to disk before ``put`` returns
    (slower; worth it when the machine may lose power, not for tests).
    """

    def __init__(self, root: str | Path, *, fsync: bool = False) -> None:
        path = Path(root).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        # Resolve once: every key must resolve to somewhere below this real path.
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
        """The file of ``key``; refuses keys that would land outside the root.

        Key rules already exclude ``..`` and absolute paths; resolving the path also
        catches a symlink inside the folder that points elsewhere.
        """
        validate_key(key)
        path = self._root.joinpath(*key.split("/"))
        real = os.path.realpath(path)
        if real != str(path):
            root = str(self._root)
            if os.path.commonpath([root, real]) != root:
                raise InvalidBlobKeyError(
                    f"blob key {key!r} resolves to {real}, outside {self.location} (a symlink?)"
                )
            return Path(real)
        return path

    def put(self, key: str, data: bytes) -> bool:
        path = self.path_for(key)
        if path.exists():
            if path.is_dir():
                raise StorageError(f"cannot write blob {key!r} to {self.location}: {path} is a directory")
            return False
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_new(tmp, data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                if path.exists():
                    return False
                os.replace(tmp, path)
            if self._fsync:
                self._fsync_dir(path.parent)
            return True
        except OSError as exc:
            raise StorageError(f"cannot write blob {key!r} to {self.location}: {exc}") from exc
        finally:
            try:
                os.unlink(tmp)
            except (FileNotFoundError, NotADirectoryError):
                pass  # linked and replaced, or never created

    def _write_new(self, tmp: Path, data: bytes) -> None:
        # os.open with 0o666 lets the umask decide permissions (mkstemp would force 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if self._fsync:
                file.flush()
                os.fsync(file.fileno())

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:  # e.g. Windows cannot open directories
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def get(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            with open(path, "rb") as file:
                data = file.read()
        except _NOT_A_BLOB:
            raise BlobNotFoundError(key, self.location) from None
        except OSError as exc:
            raise StorageError(f"cannot read blob {key!r} from {self.location}: {exc}") from exc
        verify(key, data, self.location)
        return data

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            os.unlink(path)
        except _NOT_A_BLOB:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete blob {key!r} from {self.location}: {exc}") from exc

    def size(self, key: str) -> int:
        path = self.path_for(key)
        try:
            stat = path.stat()
        except _NOT_A_BLOB:
            raise BlobNotFoundError(key, self.location) from None
        if not path.is_file():
            raise BlobNotFoundError(key, self.location)
        return stat.st_size

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        head, _, _ = prefix.rpartition("/")
        if head:
            try:
                validate_key(head)
            except InvalidBlobKeyError:
                return  # no valid key can start with an invalid path
        start = self._root.joinpath(*head.split("/")) if head else self._root
        yield from self._walk(start, head, prefix)

    def _walk(self, directory: Path, key_prefix: str, prefix: str) -> Iterator[str]:
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
                yield key
