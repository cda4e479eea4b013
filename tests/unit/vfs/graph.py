"""The object graph of a mount without the kernel: backend → block cache → ``Filesystem``.

Built the way ``mount.daemon.run`` builds it (log in, stat the root folder,
open the block cache, construct ``Filesystem``), minus ``pyfuse3``.  The
helpers speak for the kernel: they resolve a path by successive lookups,
list a folder through opendir/readdir/releasedir and read a whole file
through open/read/release, so a test reads like what a program would do on
the mount while still seeing every lookup count and handle.

A *writable* graph (``open_filesystem(..., writes=WriteSettings(...))``) adds
what the daemon adds for a read-write mount: a staging store and an
``MtimeStore`` in one directory, a ``WriteBack`` handed to ``Filesystem``,
and the upload queue's service task running in a nursery for the life of
the graph.  Leaving the graph cancels the queue the way a ``kill -9`` stops
it: committed records stay in the staging journal, and a new graph on the
same staging directory resumes them.  The write helpers (``write_file``,
``rename``, ``unlink``…) issue the requests the kernel issues for the
corresponding system calls: ``close()`` is ``flush`` then ``release``.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, TypeVar

import trio

from cache import BlockCache, CacheConfig, MtimeStore, StagingStore, open_block_cache, open_staging_store
from tests.support.portal_process import PortalProcess
from vfs.attributes import DirEntry, Entry
from vfs.backends.base import Backend
from vfs.backends.ctera import CteraBackend, Timeouts, open_ctera_backend
from vfs.backends.retry import RetryPolicy
from vfs.early_uploads import EARLY_MIN
from vfs.errors import VfsError
from vfs.exclusions import DEFAULT_EXCLUDES, Exclusions
from vfs.filesystem import Filesystem, FsConfig, WriteBack
from vfs.inodes import ROOT_INODE
from vfs.uploads import UploadQueue

W = TypeVar("W")

#: The folder an end user's mount shows at its root (what the daemon picks).
ROOT = ("My Files",)

#: Small blocks, so a few-kilobyte file already spans several and reads cross block edges.
SMALL_BLOCKS = CacheConfig(block_size=4096, memory_bytes=4 << 20, max_readahead=1 << 20, fetch_size=256 << 10)


#: An upload delay no test outlives: nothing is uploaded before the test ends, unless fsynced.
NEVER = 3600.0

#: A new file as ``open(path, O_WRONLY | O_CREAT | O_TRUNC)`` (``>`` in a shell) opens it.
CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


class PassThrough:
    """The real object behind a fault-injecting stand-in: whatever the stand-in does not define
    itself goes to ``real``, so the happy path stays the real one."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


@dataclass(frozen=True)
class WriteSettings:
    """A writable graph's settings: the daemon's ``-o upload_delay``, ``upload_workers``, ``exclude``."""

    delay: float = 0.2
    workers: int = 2
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES
    #: ``-o early_upload``: a file still being written starts going up at this size (0: never)
    early_upload: int = EARLY_MIN
    #: where staged files and kept mtimes live (default: ``staging`` beside the cache directory)
    staging_dir: FilePath | None = None


@dataclass
class Mounted:
    """A ``Filesystem`` with the backend and cache under it (the backend unwrapped, for its statistics)."""

    fs: Filesystem
    backend: CteraBackend
    cache: BlockCache
    root_path: tuple[str, ...] = ROOT
    #: the staging store of a writable graph (None: read-only)
    store: StagingStore | None = None
    #: what ``open_filesystem(wrap=...)`` put between the filesystem and ``backend`` (None: nothing)
    wrapper: Backend | None = None

    def wrapped(self, kind: type[W]) -> W:
        """The wrapper, which must be a ``kind`` (the class given as ``wrap``)."""
        assert isinstance(self.wrapper, kind), f"the backend is wrapped in {type(self.wrapper).__name__}"
        return self.wrapper

    async def resolve(self, path: str) -> Entry:
        """Look up each name of ``path`` (relative to the mount root) as the kernel does.

        Every successful step adds one lookup reference, exactly as a kernel
        path walk would; the last step may be a negative entry.
        """
        names = _names(path)
        assert names, "the root is not looked up; it is ROOT_INODE"
        inode = ROOT_INODE
        for index, name in enumerate(names):
            entry = await self.fs.lookup(inode, name)
            if entry.attributes is None:
                assert index == len(names) - 1, f"{path}: {name!r} is missing"
                return entry
            inode = entry.attributes.inode
        return entry

    async def inode(self, path: str) -> int:
        entry = await self.resolve(path)
        assert entry.attributes is not None, f"{path} does not exist"
        return entry.attributes.inode

    async def listing(self, inode: int, *, deliver: bool = False) -> list[DirEntry]:
        """The whole listing of a folder, read in one pass from offset 0."""
        handle = await self.fs.opendir(inode)
        try:
            entries = list(self.fs.readdir(handle, 0))
            if deliver:
                for entry in entries:
                    self.fs.delivered(entry)
            return entries
        finally:
            self.fs.releasedir(handle)

    async def inodes(self, inode: int, *, deliver: bool = True) -> dict[str, int]:
        """Name → inode number of a folder's entries, as one listing pass gave them."""
        listed = await self.listing(inode, deliver=deliver)
        return {entry.name: entry.entry.attributes.inode for entry in listed if entry.entry.attributes}

    async def names(self, inode: int) -> list[str]:
        return [entry.name for entry in await self.listing(inode)]

    async def read_all(self, inode: int, chunk: int = 128 << 10) -> bytes:
        """The whole content through one handle, in kernel-sized reads."""
        opened = await self.fs.open(inode, os.O_RDONLY)
        try:
            parts: list[bytes] = []
            offset = 0
            while True:
                data = await self.fs.read(opened.handle, offset, chunk)
                if not data:
                    return b"".join(parts)
                parts.append(data)
                offset += len(data)
        finally:
            await self.fs.release(opened.handle)


    # ------------------------------------------------------------ writing, as the kernel asks

    @property
    def uploads(self) -> UploadQueue:
        assert self.fs.uploads is not None, "a read-only graph has no upload queue"
        return self.fs.uploads

    async def parent_of(self, path: str) -> tuple[int, str]:
        """The inode of ``path``'s folder (looked up) and its last name."""
        names = _names(path)
        assert names, "the root has no parent"
        parent = await self.inode("/".join(names[:-1])) if len(names) > 1 else ROOT_INODE
        return parent, names[-1]

    async def exists(self, path: str) -> bool:
        return (await self.resolve(path)).attributes is not None

    async def open_file(self, path: str, flags: int = os.O_RDONLY) -> int:
        """``open(path, flags)``: a handle; ``O_CREAT`` makes the file when the name is free."""
        entry = await self.resolve(path)
        if entry.attributes is not None:
            if flags & os.O_CREAT and flags & os.O_EXCL:
                raise VfsError(errno.EEXIST)
            # the kernel answers O_CREAT and O_EXCL itself once the name exists
            return (await self.fs.open(entry.attributes.inode, flags & ~(os.O_CREAT | os.O_EXCL))).handle
        assert flags & os.O_CREAT, f"{path} does not exist"
        parent, name = await self.parent_of(path)
        opened, _ = await self.fs.create(parent, name, flags)
        return opened.handle

    async def close(self, handle: int) -> None:
        """``close()`` of the last descriptor of an open file: flush, then release."""
        try:
            await self.fs.flush(handle)
        finally:
            await self.fs.release(handle)

    async def write_file(self, path: str, data: bytes, flags: int = CREATE, *, chunk: int = 128 << 10) -> int:
        """Open ``path`` with ``flags``, write ``data`` in kernel-sized pieces from offset 0 and close it;
        its inode."""
        handle = await self.open_file(path, flags)
        try:
            for offset in range(0, len(data), chunk):
                await self.fs.write(handle, offset, data[offset:offset + chunk])
        finally:
            await self.close(handle)
        return await self.inode(path)

    async def read_file(self, path: str) -> bytes:
        return await self.read_all(await self.inode(path))

    async def mkdir(self, path: str) -> int:
        parent, name = await self.parent_of(path)
        return (await self.fs.mkdir(parent, name)).attributes.inode  # type: ignore[union-attr]

    async def rmdir(self, path: str) -> None:
        parent, name = await self.parent_of(path)
        await self.fs.rmdir(parent, name)

    async def unlink(self, path: str) -> None:
        parent, name = await self.parent_of(path)
        await self.fs.unlink(parent, name)

    async def rename(self, source: str, target: str, flags: int = 0) -> None:
        """``renameat2(source, target, flags)``."""
        parent, name = await self.parent_of(source)
        new_parent, new_name = await self.parent_of(target)
        await self.fs.rename(parent, name, new_parent, new_name, flags)

    async def truncate(self, path: str, size: int) -> None:
        """``truncate(path, size)``: a setattr of the size without a handle."""
        await self.fs.setattr(await self.inode(path), size=size)

    async def set_mtime(self, path: str, mtime: float) -> None:
        """``utimensat(path)`` as ``touch -d`` does it."""
        await self.fs.setattr(await self.inode(path), mtime=mtime)

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait (with a deadline) until the upload queue has nothing left to send."""
        with trio.fail_after(timeout):
            await self.uploads.drain()


def _names(path: str) -> list[str]:
    return [name for name in path.split("/") if name]


async def refused(request: Awaitable[object]) -> int:
    """The errno ``request`` fails with (it must fail with a ``VfsError``)."""
    try:
        await request
    except VfsError as exc:
        return exc.errno
    raise AssertionError("the request succeeded")


def open_writable(portal: PortalProcess, tmp_path: FilePath, *, delay: float = 0.2, workers: int = 2,
                  excludes: tuple[str, ...] = DEFAULT_EXCLUDES, early_upload: int = EARLY_MIN,
                  **options: Any) -> AbstractAsyncContextManager[Mounted]:
    """A writable graph whose cache and staging area live in ``tmp_path`` (the same ones when opened
    again with the same ``tmp_path``: a remount)."""
    settings = WriteSettings(delay=delay, workers=workers, excludes=excludes, early_upload=early_upload,
                             staging_dir=tmp_path / "staging")
    return open_filesystem(portal, tmp_path / "cache", writes=settings, **options)


@asynccontextmanager
async def open_filesystem(
    portal: PortalProcess,
    cache_dir: FilePath,
    config: FsConfig | None = None,
    *,
    user: str = "alice",
    cache: CacheConfig = SMALL_BLOCKS,
    wrap: Callable[[CteraBackend], Backend] | None = None,
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
    writes: WriteSettings | None = None,
) -> AsyncIterator[Mounted]:
    """A ``Filesystem`` of ``user``'s ``My Files`` on ``portal``; logged out and closed on exit.

    A global administrator (``user`` one of ``portal.admins``) gets the whole
    namespace at the root, as the daemon mounts it.

    ``wrap`` puts a delegating object between the filesystem and the real
    backend (fault injection: a stall, a count) without replacing the backend;
    pass its class, and find the object as ``mounted.wrapper`` (``mounted.wrapped(Class)``).

    ``writes`` makes the graph writable (see the module docstring); without
    it the filesystem is read-only, as with ``-o ro``.
    """
    extra = {"timeouts": timeouts} if timeouts is not None else {}
    admin = user in portal.admins
    password = portal.admins[user] if admin else portal.users[user]
    root_path = () if admin else ROOT
    async with open_ctera_backend(
        portal.url, user, password, admin=admin, ca_file=portal.cert, retry=retry, **extra
    ) as backend:
        root = await backend.stat(root_path)
        async with open_block_cache(dataclasses.replace(cache, disk_dir=cache_dir)) as blocks:
            wrapper = wrap(backend) if wrap is not None else None
            below = wrapper if wrapper is not None else backend
            if writes is None:
                fs = Filesystem(below, blocks, config or FsConfig(), root_path, root)
                yield Mounted(fs, backend, blocks, root_path, wrapper=wrapper)
                return
            staging = writes.staging_dir or cache_dir.parent / "staging"
            async with open_staging_store(staging, block_size=cache.block_size) as store:
                mtimes = await trio.to_thread.run_sync(MtimeStore, staging)
                try:
                    write_back = WriteBack(store, mtimes, Exclusions(writes.excludes), delay=writes.delay,
                                           workers=writes.workers, early_upload=writes.early_upload)
                    fs = Filesystem(below, blocks, config or FsConfig(), root_path, root, write_back)
                    assert fs.uploads is not None
                    async with trio.open_nursery() as services:
                        await services.start(fs.uploads.run)
                        yield Mounted(fs, backend, blocks, root_path, store, wrapper)
                        services.cancel_scope.cancel()
                finally:
                    mtimes.close()

