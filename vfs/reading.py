"""The filesystem model: POSIX requests answered from a portal backend and a block cache.

``Filesystem`` is shaped like FUSE (inodes, lookup counts, handles, offsets)
but knows nothing of pyfuse3; ``mount.operations`` adapts it.  It decides
every semantic the portal does not:

* **Identity.** Inodes follow remote identities (:mod:`vfs.inodes`); content
  is cached per (identity, version), never per path, so a new remote version
  is never served from stale blocks.  ``open`` lets the kernel keep its page
  cache (``keep_cache``) only when the version is the one it cached before.
* **Few requests.** A folder is listed once (:mod:`vfs.listings`) and that
  listing answers lookups, getattr and readdirplus of its children; kernel
  entry and attribute timeouts are never zero, and a missing name is
  answered with a *negative entry* the kernel caches.
* **Snapshots.** ``.snapshots`` resolves in every live folder (listed only at
  the mount root); below it everything is read-only with its own inodes.
* **Bounded time, graceful absence.** Every request runs under
  ``request_timeout``; a portal that stalls yields ``ETIMEDOUT`` or ``EIO``
  for what needs it, while names, attributes and blocks already known keep
  being served from the last listing and the block cache.

* **Local knowledge first.** Files written here and not yet uploaded are
  answered from the :class:`~vfs.overlay.Overlay` wherever the portal would
  otherwise be believed (lookups, listings, attributes, reads); times set
  through the mount come from the :class:`~cache.MtimeStore`.

This module is the read side; :mod:`vfs.writing` and :mod:`vfs.filesystem`
add the changes.  Without them (a read-only mount) changes fail with EROFS.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import itertools
import math
import os
import stat
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import trio
from cachetools import TTLCache

from cache import BlockCache, MtimeStore, ObjectKey, ReadStream
from vfs import snapshots
from vfs.attributes import Attributes, DirEntry, Entry, FsStats, OpenFile
from vfs.backends.base import Backend, NotFound, Path, Quota, RemoteEntry, SnapshotRef, Transient
from vfs.errors import VfsError, backend_errors
from vfs.inodes import InodeTable, Kind, Node
from vfs.listings import PAGE_SIZE, Listing, ListingCache
from vfs.overlay import STAGED_PREFIX, Overlay, entry_of
from vfs.prefetch import FolderPrefetch

#: Names desktops and shells probe for in every folder; never worth a request.
PROBE_NAMES = frozenset(
    {
        ".hidden", ".xdg-volume-info", "autorun.inf", "AutoRun.inf", "desktop.ini", "Desktop.ini",
        "Thumbs.db", ".DS_Store", ".Trash", ".directory", ".git", ".svn", ".hg",
    }
)


def is_probe(name: str) -> bool:
    """Is ``name`` one that programs look for everywhere (``.Trash-1000`` included)?"""
    return name in PROBE_NAMES or name.startswith(".Trash-")


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT

#: Seconds a quota answer is reused for statfs.
QUOTA_TTL = 30.0

P = ParamSpec("P")
T = TypeVar("T")


class StagedCopyGone(Exception):
    """``_read_staged``: the staged copy is no longer there (uploaded and dropped meanwhile).

    A type of its own, not an errno: an ESTALE from the staging area's base fetch
    (the portal changed under a partial edit) is an answer for the reader, while
    this one means "read what the portal has now".
    """


@dataclass(frozen=True)
class FsConfig:
    uid: int = 0
    gid: int = 0
    #: how long the kernel may trust a name → inode answer, and attributes
    entry_timeout: float = 10.0
    attr_timeout: float = 10.0
    #: how long the kernel may trust "no such name"
    negative_timeout: float = 10.0
    #: how long a folder listing is reused before it is fetched again
    listing_ttl: float = 30.0
    #: the longest any one request may take before it fails with ETIMEDOUT
    request_timeout: float = 60.0
    #: write-only handles bypass the kernel's page cache (``direct_io``): a large
    #: copy onto the mount then costs the kernel no page-cache copy of what it
    #: writes.  Only safe where the kernel drops other handles' cached pages of a
    #: range written that way (the mount decides: mount/kernel.py).
    direct_writes: bool = False


@dataclass
class _FileHandle:
    node: Node
    entry: RemoteEntry
    stream: ReadStream
    writable: bool = False
    append: bool = False
    #: the staged record a writable handle writes to
    record_id: int | None = None
    #: written since the last commit
    dirty: bool = False
    #: opened ``direct_io``: its writes do not go through the kernel's page cache
    direct: bool = False


@dataclass
class _Child:
    """A directory entry as listed, before the kernel has been told about it."""

    name: str
    kind: Kind
    key: Hashable
    entry: RemoteEntry | None
    anchor: Path | None = None
    snapshot: SnapshotRef | None = None


@dataclass
class _DirHandle:
    node: Node
    children: list[_Child]
    #: nodes readdir handed out; those the kernel never took are dropped at releasedir
    listed: dict[int, Node] = field(default_factory=dict)


def bounded(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Fail the request with ETIMEDOUT once it has run ``config.request_timeout``.

    A bare cancel scope rather than ``trio.fail_after``: every FUSE request
    passes here, and the generator-based context manager around the same
    scope costs 1–2 µs more a request (trio 0.35, CPython 3.11).
    """

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        self = args[0]
        with trio.CancelScope(deadline=trio.current_time() + self.config.request_timeout):  # type: ignore[attr-defined]
            return await method(*args, **kwargs)
        # only reached when the deadline cancelled the request (the scope swallowed it)
        raise VfsError(errno.ETIMEDOUT, f"{method.__name__} took too long")

    return run


def staged_record_id(entry: RemoteEntry | None) -> int | None:
    """The staging record an entry stands for (see :mod:`vfs.overlay`), or None."""
    if entry is None or not entry.version.startswith(STAGED_PREFIX):
        return None
    return int(entry.version[len(STAGED_PREFIX):])


class Reading:
    def __init__(self, backend: Backend, cache: BlockCache, config: FsConfig, root_path: Path, root: RemoteEntry) -> None:
        if not root.is_dir:
            raise VfsError(errno.ENOTDIR, f"{'/'.join(root_path)} is not a folder")
        self.backend = backend
        self.cache = cache
        self.config = config
        self.inodes = InodeTable(root_path, root)
        self.listings = ListingCache(backend, ttl=config.listing_ttl)
        self.prefetch = FolderPrefetch(backend, cache)
        self._snapshot_lists: TTLCache[Hashable, dict[str, SnapshotRef]] = TTLCache(
            maxsize=256, ttl=config.listing_ttl, timer=trio.current_time
        )
        #: the portal's last answer about the quota, and when it was asked (df polls: ask at most every QUOTA_TTL)
        self._last_quota: Quota | None = None
        self._quota_asked_at = -math.inf
        self._handles: dict[int, _FileHandle | _DirHandle] = {}
        self._handle_numbers = itertools.count(1)
        self.overlay = Overlay()
        self.mtimes: MtimeStore | None = None
        #: tell the kernel to drop its cached answer for (folder inode, name): set by the mount
        #: layer, used when a name appears or goes without the kernel asking (undelete, copy)
        self.invalidate_entry: Callable[[int, str], None] = lambda folder, name: None

    # ----------------------------------------------------------- attributes

    def _attributes(self, node: Node) -> Attributes:
        entry = node.entry
        read_only = node.kind.read_only or (entry is not None and not entry.writable)
        if node.is_dir:
            mode = stat.S_IFDIR | (0o555 if read_only else 0o755)
        else:
            mode = stat.S_IFREG | (0o444 if read_only else 0o644)
        if entry is not None and not entry.readable:
            mode &= ~0o444
        return Attributes(
            inode=node.inode,
            mode=mode,
            size=0 if entry is None or entry.is_dir else entry.size,
            mtime_ns=int(self._mtime(node) * 1e9),
            nlink=2 if node.is_dir else 1,
            uid=self.config.uid,
            gid=self.config.gid,
        )

    def _mtime(self, node: Node) -> float:
        """A ``.snapshots`` folder has no entry of its own: it shows its folder's time."""
        if node.entry is not None:
            if self.mtimes is not None and node.kind in (Kind.LIVE, Kind.ROOT):
                kept = self.mtimes.get(node.entry.object_id, node.entry.version)
                if kept is not None:
                    return kept
            return node.entry.mtime
        parent = self.inodes.get(node.parent)
        return parent.entry.mtime if parent is not None and parent.entry is not None else 0.0

    def _entry(self, node: Node) -> Entry:
        return Entry(self._attributes(node), self.config.entry_timeout, self.config.attr_timeout)

    def _negative(self) -> Entry:
        return Entry(None, self.config.negative_timeout, self.config.negative_timeout)

    def _node(self, inode: int) -> Node:
        node = self.inodes.get(inode)
        if node is None:
            raise VfsError(errno.ESTALE, f"inode {inode} is not known")
        return node

    # ---------------------------------------------------------------- names

    @bounded
    async def lookup(self, parent_inode: int, name: str) -> Entry:
        parent = self._node(parent_inode)
        if not parent.is_dir:
            raise VfsError(errno.ENOTDIR)
        if name in (".", ".."):
            node = parent if name == "." else self._node(parent.parent)
            self.inodes.remember(node)
            return self._entry(node)
        child = await self._find_child(parent, name)
        if child is None:
            return self._negative()
        node = self._learn(parent, child)
        self.inodes.remember(node)
        return self._entry(node)

    def forget(self, items: list[tuple[int, int]]) -> None:
        for inode, count in items:
            self.inodes.forget(inode, count)

    async def _find_child(self, parent: Node, name: str) -> _Child | None:
        if parent.kind is Kind.SNAPSHOTS:
            ref = (await self._snapshots_of(parent)).get(name)
            return self._snapshot_child(parent, name, ref) if ref else None
        if name == snapshots.SNAPSHOTS_DIR and parent.kind in (Kind.ROOT, Kind.LIVE):
            return _Child(name, Kind.SNAPSHOTS, ("snapshots", parent.key), None)
        entry = await self._child_entry(parent, name)
        return self._live_or_snapshot_child(parent, entry) if entry else None

    async def _child_entry(self, parent: Node, name: str) -> RemoteEntry | None:
        if parent.kind in (Kind.ROOT, Kind.LIVE) and self.overlay:
            staged = self.overlay.entry((*self.inodes.remote_path(parent), name))
            if staged is not None:
                return staged
        return await self._remote_child_entry(parent, name)

    async def _remote_child_entry(self, parent: Node, name: str) -> RemoteEntry | None:
        """What the portal (or our listing of it) says is at ``name``, ignoring staged files."""
        probe = is_probe(name)
        listing = self.listings.peek(parent.key, allow_stale=probe)
        if listing is None and (probe or self._relist_is_cheaper(parent)):
            listing = await self._listing(parent)
        if listing is not None:
            return listing.by_name.get(name)
        path = (*self.inodes.remote_path(parent), name)
        with backend_errors(f"lookup {'/'.join(path)}"):
            try:
                return await self.backend.stat(path)
            except NotFound:
                return None
            except Transient:  # the portal is away: answer from what we knew
                stale = self.listings.peek(parent.key, allow_stale=True)
                if stale is not None:
                    return stale.by_name.get(name)
                known = self.inodes.child(parent, name)
                if known is None or known.entry is None:
                    raise
                return known.entry

    def _relist_is_cheaper(self, parent: Node) -> bool:
        """Is listing ``parent`` again better than a stat per name looked up in it?

        Yes when its (expired) listing fit in one page: one request, shared by
        every concurrent lookup, answers them all — a program walking a tree
        slower than the listing TTL would otherwise cost one stat per file.
        """
        stale = self.listings.peek(parent.key, allow_stale=True)
        return stale is not None and len(stale.entries) <= PAGE_SIZE

    def _live_or_snapshot_child(self, parent: Node, entry: RemoteEntry) -> _Child:
        if parent.kind in (Kind.ROOT, Kind.LIVE):
            return _Child(entry.name, Kind.LIVE, entry.object_id, entry)
        assert parent.snapshot is not None
        return _Child(entry.name, Kind.SNAPSHOT_ITEM, ("snap", parent.snapshot.taken_at, entry.object_id), entry,
                      snapshot=parent.snapshot)

    def _snapshot_child(self, snapshots_dir: Node, name: str, ref: SnapshotRef) -> _Child:
        folder = self._node(snapshots_dir.parent)
        entry = RemoteEntry(path=ref.path, is_dir=True, size=0, mtime=ref.taken_at,
                            object_id=f"{folder.key}@{ref.taken_at}", version="", writable=False)
        return _Child(name, Kind.SNAPSHOT_ROOT, ("snap", ref.taken_at, folder.key), entry, anchor=ref.path, snapshot=ref)

    def _learn(self, parent: Node, child: _Child) -> Node:
        return self.inodes.learn(parent, child.name, child.kind, child.key, child.entry, anchor=child.anchor,
                                 snapshot=child.snapshot, now=trio.current_time())

    async def _listing(self, node: Node) -> Listing:
        """The node's listing; while the portal is unreachable, the last one we had."""
        path = self.inodes.remote_path(node)
        with backend_errors(f"list {'/'.join(path)}"):
            try:
                return await self.listings.get(node.key, path)
            except Transient:
                stale = self.listings.peek(node.key, allow_stale=True)
                if stale is None:
                    raise
                return stale

    async def _snapshots_of(self, snapshots_dir: Node) -> dict[str, SnapshotRef]:
        folder = self._node(snapshots_dir.parent)
        known = self._snapshot_lists.get(folder.key)
        if known is None:
            path = self.inodes.remote_path(folder)
            with backend_errors(f"list snapshots of {'/'.join(path)}"):
                known = snapshots.labelled(await self.backend.list_snapshots(path))
            self._snapshot_lists[folder.key] = known
        return known

    # ----------------------------------------------------------- attributes

    @bounded
    async def getattr(self, inode: int) -> Attributes:
        node = self._node(inode)
        await self._revalidate(node)
        return self._attributes(node)

    async def _revalidate(self, node: Node) -> None:
        """Refresh a node's entry once it is older than the listing TTL."""
        if node.entry is None or node.kind in (Kind.ROOT, Kind.SNAPSHOT_ROOT, Kind.SNAPSHOTS):
            return
        record_id = staged_record_id(node.entry)
        if record_id is not None:
            if node.orphan_record == record_id:
                return
            record = self.overlay.get(record_id)
            if record is not None:  # staged: what we have is the truth, no request
                node.entry = entry_of(record)
                return
            node.confirmed_at = 0.0  # its staged copy is gone (uploaded, dropped): ask the portal
        elif trio.current_time() - node.confirmed_at <= self.config.listing_ttl:
            return
        parent = self.inodes.get(node.parent)
        staged = self.overlay.entry(self.inodes.remote_path(node)) if self.overlay and not node.detached else None
        if staged is not None:
            node.entry, node.confirmed_at = staged, trio.current_time()
            return
        listing = self.listings.peek(parent.key) if parent else None
        if listing is not None:
            entry = listing.by_name.get(node.name)
        else:
            path = self.inodes.remote_path(node)
            with backend_errors(f"stat {'/'.join(path)}"):
                try:
                    entry = await self.backend.stat(path)
                except NotFound:
                    entry = None
                except Transient:
                    return  # the portal is away: keep serving what we knew
        if entry is None and parent is not None:
            entry = await self._renamed(parent, node)
        if entry is None:
            raise VfsError(errno.ENOENT, f"{node.name} is gone from the portal")
        node.entry, node.confirmed_at = entry, trio.current_time()

    async def _renamed(self, parent: Node, node: Node) -> RemoteEntry | None:
        """The node's entry under a new name in its folder (renamed on the portal), or None.

        Inodes follow identities, so an inode the kernel holds (an open file
        above all) stays usable after a remote rename, before any readdir has
        shown the kernel the new name.  Costs the folder's listing, and only
        when the old name is missing.
        """
        listing = await self._listing(parent)
        for entry in listing.entries:
            child = self._live_or_snapshot_child(parent, entry)
            if child.key == node.key:
                self._learn(parent, child)
                return entry
        return None

    # ---------------------------------------------------------- directories

    @bounded
    async def opendir(self, inode: int) -> int:
        node = self._node(inode)
        if not node.is_dir:
            raise VfsError(errno.ENOTDIR)
        if node.kind is Kind.SNAPSHOTS:
            children = [self._snapshot_child(node, name, ref) for name, ref in (await self._snapshots_of(node)).items()]
        else:
            listing = await self._listing(node)
            entries: Iterable[RemoteEntry] = listing.entries
            if node.kind in (Kind.ROOT, Kind.LIVE):
                folder = self.inodes.remote_path(node)
                entries = self._visible(folder, entries)
                if self.overlay:
                    entries = self.overlay.merge(folder, entries)
            children = [self._live_or_snapshot_child(node, entry) for entry in entries]
            if node.kind is Kind.ROOT:
                children.insert(0, _Child(snapshots.SNAPSHOTS_DIR, Kind.SNAPSHOTS, ("snapshots", node.key), None))
        return self._new_handle(_DirHandle(node, children))

    def readdir(self, handle: int, offset: int) -> Iterator[DirEntry]:
        """Entries from ``offset``; call :meth:`delivered` for each one the kernel accepts."""
        directory = self._handles.get(handle)
        if not isinstance(directory, _DirHandle):
            raise VfsError(errno.EBADF)
        for index in range(offset, len(directory.children)):
            child = directory.children[index]
            node = self._learn(directory.node, child)
            directory.listed[node.inode] = node
            yield DirEntry(child.name, self._entry(node), index + 1)

    def delivered(self, entry: DirEntry) -> None:
        """The kernel took ``entry`` (readdirplus): it now holds one more reference."""
        assert entry.entry.attributes is not None
        node = self.inodes.get(entry.entry.attributes.inode)
        if node is not None:
            self.inodes.remember(node)

    def releasedir(self, handle: int) -> None:
        directory = self._handles.pop(handle, None)
        if isinstance(directory, _DirHandle):
            for node in directory.listed.values():
                self.inodes.drop_if_unused(node)

    # ---------------------------------------------------------------- files

    @bounded
    async def open(self, inode: int, flags: int) -> OpenFile:
        node = self._node(inode)
        if node.is_dir:
            raise VfsError(errno.EISDIR)
        if flags & _WRITE_FLAGS:
            return await self._open_for_writing(node, flags)
        await self._revalidate(node)
        assert node.entry is not None
        if not node.entry.readable:
            raise VfsError(errno.EACCES)
        keep_cache = node.cached_version == node.entry.version
        node.cached_version = node.entry.version
        self._opened_for_reading(node)
        node.open_handles += 1
        handle = self._new_handle(_FileHandle(node, node.entry, self.cache.stream()))
        return OpenFile(handle, keep_cache=keep_cache)

    @bounded
    async def read(self, handle: int, offset: int, size: int) -> bytes:
        opened = self._handles.get(handle)
        if not isinstance(opened, _FileHandle):
            raise VfsError(errno.EBADF)
        try:
            return await self._read(opened, offset, size)
        except VfsError as exc:
            if exc.errno != errno.ENOENT:
                raise
            # Renamed on the portal since it was opened?  Find it by identity (ENOENT if it is gone).
            opened.node.confirmed_at = 0.0
            await self._revalidate(opened.node)
            return await self._read(opened, offset, size)

    def _opened_for_reading(self, node: Node) -> None:
        """Tell the folder prefetch, when the file is as its folder's fresh listing shows it."""
        entry = node.entry
        if node.kind is not Kind.LIVE or entry is None or not self.prefetch.wants(entry):
            return  # the common case for large files and a mount without prefetch: nothing more
        parent = self.inodes.get(node.parent)
        listing = self.listings.peek(parent.key) if parent is not None else None
        if parent is not None and listing is not None and listing.by_name.get(node.name) == entry:
            grandparent = self.inodes.get(parent.parent)
            self.prefetch.opened(parent.key, grandparent.key if grandparent is not None else None, listing, entry,
                                 functools.partial(self.inodes.remote_path, parent),
                                 functools.partial(self._next_folder, parent))

    def _next_folder(self, folder: Node) -> tuple[Hashable, Listing, Path] | None:
        """The folder after ``folder`` in its parent's listing, with its fresh listing and its path,
        if both listings are known."""
        parent = self.inodes.get(folder.parent)
        if folder.kind is not Kind.LIVE or parent is None or (siblings := self.listings.peek(parent.key)) is None:
            return None
        place = siblings.positions.get(folder.name)
        if place is None:
            return None
        following = itertools.islice(siblings.entries, place + 1, None)
        sibling = next((item for item in following if item.is_dir), None)
        if sibling is None:
            return None
        key = sibling.object_id  # a live folder's key (``folder`` is live, so its siblings are)
        listing = self.listings.peek(key)
        return None if listing is None else (key, listing, (*self.inodes.remote_path(parent), sibling.name))

    async def _open_for_writing(self, node: Node, flags: int) -> OpenFile:
        raise VfsError(errno.EROFS, "this mount is read-only")

    def _visible(self, folder: Path, entries: Iterable[RemoteEntry]) -> Iterable[RemoteEntry]:
        """Hook: the listing entries to show (the write side hides files deleted while open)."""
        return entries

    async def _read_staged(self, node: Node, record_id: int, offset: int, size: int) -> bytes:
        raise VfsError(errno.EIO, "no staging area")

    async def _read(self, opened: _FileHandle, offset: int, size: int) -> bytes:
        record_id = staged_record_id(opened.node.entry)
        if record_id is not None:  # written here: the local content, whoever opened it when
            try:
                return await self._read_staged(opened.node, record_id, offset, size)
            except StagedCopyGone:
                pass
            await self._revalidate(opened.node)  # uploaded meanwhile: read what the portal has now
            if opened.node.entry is not None and staged_record_id(opened.node.entry) is None:
                opened.entry = opened.node.entry
            else:
                return await self._read(opened, offset, size)
        entry = opened.entry

        def path_now() -> Path:
            # The version opened, at the node's path now (a remote rename seen since moves it).
            try:
                return self.inodes.remote_path(opened.node)
            except KeyError:  # a read-ahead outliving the handle and the node's folder
                return entry.path

        try:
            with backend_errors(f"read {'/'.join(entry.path)}"):
                return await self._read_version(entry, offset, size, path_now, opened.stream)
        except VfsError as exc:
            if exc.errno == errno.ESTALE:  # changed on the portal: the next open sees the new version
                opened.node.confirmed_at = 0.0
                parent = self.inodes.get(opened.node.parent)
                if parent is not None:
                    self.listings.invalidate(parent.key)
            raise

    async def _read_version(self, entry: RemoteEntry, offset: int, size: int,
                            path_now: Callable[[], Path] | None = None, stream: ReadStream | None = None) -> bytes:
        """Bytes of the remote version ``entry`` through the block cache (keyed by id and
        version, so a path is only where to fetch from: ``path_now()``, if the file may
        have moved since ``entry`` was taken).  Backend errors pass as they are."""
        key = ObjectKey(entry.object_id, entry.version, entry.size)

        async def fetch(start: int, length: int) -> bytes:
            path = entry.path if path_now is None else path_now()
            return await self.backend.read(entry if path == entry.path else dataclasses.replace(entry, path=path),
                                           start, length)

        return await self.cache.read(key, offset, size, fetch, stream)

    async def release(self, handle: int) -> None:
        opened = self._handles.pop(handle, None)
        if isinstance(opened, _FileHandle):
            opened.node.open_handles -= 1
            self.inodes.drop_if_unused(opened.node)

    def _new_handle(self, value: _FileHandle | _DirHandle) -> int:
        number = next(self._handle_numbers)
        self._handles[number] = value
        return number

    # ------------------------------------------------------------ the volume

    @bounded
    async def statfs(self) -> FsStats:
        if trio.current_time() - self._quota_asked_at >= QUOTA_TTL:
            try:
                with backend_errors("quota"):
                    self._last_quota = await self.backend.quota()
            except VfsError:
                pass  # the portal is away: answer with what we last knew (and ask again after the TTL)
            self._quota_asked_at = trio.current_time()
        quota = self._last_quota
        block = 4096
        if quota is None or quota.available is None:
            total = 1 << 50  # unknown or unlimited: report a petabyte, as network filesystems do
            used = quota.used if quota else 0
            free = total - used
        else:
            used, free = quota.used, quota.available
            total = used + free
        return FsStats(block_size=block, blocks=total // block, blocks_free=max(0, free) // block,
                       files=1 << 32, files_free=1 << 31)

    def statistics(self) -> dict[str, int]:
        return {"inodes": len(self.inodes), "handles": len(self._handles)}

