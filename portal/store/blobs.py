"""Immutable content files ("blobs") of the store.

A blob is written once under ``tmp/``, fsynced, then renamed into
``blobs/xx/<name>`` and its directory fsynced; only after that does a database
transaction reference it.  So:

* a crash while receiving leaves only a ``tmp/`` file, removed at the next start;
* a crash between the rename and the commit leaves an unreferenced blob, also
  removed at the next start (:meth:`BlobStore.recover`); a commit that is
  refused instead (a condition that no longer holds) removes it at once;
* a blob, once referenced, is never modified, so versions, copies and snapshots
  can share it and readers never need a lock.

Writes go through a worker thread in chunks of :data:`WRITE_CHUNK` so that a
slow disk never stalls the server's event loop, and a 2 GiB upload never sits
in memory.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

import trio

WRITE_CHUNK = 1 << 20

T = TypeVar("T")


class StagedBlob:
    """A blob being received.  ``await write(...)`` then ``await commit(reference)`` or ``abort()``."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self.name = uuid.uuid4().hex
        self._tmp_path = store.tmp_dir / f"{self.name}.part"
        self._file: BinaryIO | None = open(self._tmp_path, "xb")  # noqa: SIM115 - closed in commit/abort
        self._pending = bytearray()
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._pending += data
        self.size += len(data)
        if len(self._pending) >= WRITE_CHUNK:
            await self._flush_pending()

    async def _flush_pending(self) -> None:
        if self._pending and self._file is not None:
            chunk, self._pending = bytes(self._pending), bytearray()
            await trio.to_thread.run_sync(self._file.write, chunk)

    async def commit(self, reference: Callable[[str], T]) -> T:
        """Make the blob durable and permanent, then ``reference(name)`` and return what it returns.

        ``reference`` is the database change that uses the blob, run as soon as
        the blob is in place.  Other tasks run while the blob is made durable,
        so that is where ``reference`` checks what they may have changed; being
        synchronous, nothing runs between its checks and its writes.  Should it
        raise (a condition that no longer holds, a name taken meanwhile, the
        quota), its transaction was rolled back, nothing refers to the blob, and
        the blob is removed at once rather than left for the next start's
        :meth:`BlobStore.recover`.  So ``reference`` must not raise once its
        write has committed.
        """
        await self._flush_pending()
        file, self._file = self._file, None
        assert file is not None, "commit after commit/abort"
        final = self._store.path(self.name)

        def finish() -> None:
            try:
                file.flush()
                os.fsync(file.fileno())
            finally:
                file.close()
            final.parent.mkdir(exist_ok=True)
            os.replace(self._tmp_path, final)
            _fsync_dir(final.parent)

        await trio.to_thread.run_sync(finish)
        try:
            return reference(self.name)
        except Exception:  # not BaseException: an interrupt may come after the commit, and an orphan is harmless
            with contextlib.suppress(OSError):  # the refusal is the answer, not a failed unlink
                final.unlink()
            raise

    def abort(self) -> None:
        """Throw the partial blob away (safe to call twice, or after commit)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._tmp_path.unlink(missing_ok=True)


class BlobStore:
    """The ``blobs/`` and ``tmp/`` directories under the portal's data directory."""

    def __init__(self, root: Path) -> None:
        self.blob_dir = root / "blobs"
        self.tmp_dir = root / "tmp"
        self.blob_dir.mkdir(mode=0o700, exist_ok=True)
        self.tmp_dir.mkdir(mode=0o700, exist_ok=True)

    def path(self, name: str) -> Path:
        if len(name) != 32 or not all(c in "0123456789abcdef" for c in name):
            raise ValueError(f"not a blob name: {name!r}")
        return self.blob_dir / name[:2] / name

    def stage(self) -> StagedBlob:
        return StagedBlob(self)

    def write_small(self, data: bytes, *, durable: bool = True) -> str:
        """Store ``data`` synchronously (seeding and tests); returns the blob name.

        ``durable=False`` skips the per-file fsync for bulk seeding, whose caller
        syncs once at the end.
        """
        name = uuid.uuid4().hex
        tmp = self.tmp_dir / f"{name}.part"
        with open(tmp, "xb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        final = self.path(name)
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
        return name

    def recover(self, is_referenced: Callable[[str], bool]) -> int:
        """Remove leftovers of interrupted writes; returns how many files went."""
        removed = 0
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        for shard in self.blob_dir.iterdir():
            if not shard.is_dir():
                continue
            for blob in shard.iterdir():
                if not is_referenced(blob.name):
                    blob.unlink(missing_ok=True)
                    removed += 1
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
