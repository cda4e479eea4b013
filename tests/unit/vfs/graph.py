"""The object graph of a mount without the kernel: backend → block cache → ``Filesystem``.

Built the way ``mount.daemon.run`` builds it (log in, stat the root folder,
open the block cache, construct ``Filesystem``), minus ``pyfuse3``.  The
helpers speak for the kernel: they resolve a path by successive lookups,
list a folder through opendir/readdir/releasedir and read a whole file
through open/read/release, so a test reads like what a program would do on
the mount while still seeing every lookup count and handle.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path as FilePath

from cache import BlockCache, CacheConfig, open_block_cache
from tests.support.portal_process import PortalProcess
from vfs.attributes import DirEntry, Entry
from vfs.backends.base import Backend
from vfs.backends.ctera import CteraBackend, Timeouts, open_ctera_backend
from vfs.backends.retry import RetryPolicy
from vfs.filesystem import Filesystem, FsConfig
from vfs.inodes import ROOT_INODE

#: The folder an end user's mount shows at its root (what the daemon picks).
ROOT = ("My Files",)

#: Small blocks, so a few-kilobyte file already spans several and reads cross block edges.
SMALL_BLOCKS = CacheConfig(block_size=4096, memory_bytes=4 << 20, max_readahead=1 << 20, fetch_size=256 << 10)


@dataclass
class Mounted:
    """A ``Filesystem`` with the backend and cache under it (the backend unwrapped, for its statistics)."""

    fs: Filesystem
    backend: CteraBackend
    cache: BlockCache
    root_path: tuple[str, ...] = ROOT

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


def _names(path: str) -> list[str]:
    return [name for name in path.split("/") if name]


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
) -> AsyncIterator[Mounted]:
    """A ``Filesystem`` of ``user``'s ``My Files`` on ``portal``; logged out and closed on exit.

    A global administrator (``user`` one of ``portal.admins``) gets the whole
    namespace at the root, as the daemon mounts it.

    ``wrap`` puts a delegating object between the filesystem and the real
    backend (fault injection: a stall, a count) without replacing the backend.
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
            below = wrap(backend) if wrap is not None else backend
            fs = Filesystem(below, blocks, config or FsConfig(), root_path, root)
            yield Mounted(fs, backend, blocks, root_path)

