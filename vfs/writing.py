"""Writing file content: staged locally, durable at close, uploaded in the background.

The portal stores only whole files, so a file opened for writing becomes a
*staged file* (``cache.staging``): a lazy local copy of its current version
that fetches only the blocks a partial write needs.  The rules:

* **Durable at close.** ``flush`` (every ``close()``) commits the staged
  content — fsynced data and a journal record — before it returns, then
  hands the file to the upload queue (:mod:`vfs.uploads`), which sends it
  after a short quiet period.  ``fsync`` commits and waits until the portal
  has confirmed the upload.  A ``kill -9`` or power cut after an
  acknowledged close loses nothing: the next mount finds the journal.
* **One staged copy per file**, shared by all its handles; reads through
  any handle, opened before or after, see the written bytes.
* **Identity.** A file written in place stays the same portal file: its
  staged copy carries the file's ``object_id`` and the version it started
  from (which also detects conflicting remote changes at upload time).  A
  new file gets a local identity until its first upload gives it a real one;
  its inode does not change meanwhile.
* **Times.** The portal stamps uploads with its own clock and cannot be
  told a time, so times set by ``touch -d``, ``cp -p``, ``tar x`` are kept
  locally per version (``cache.MtimeStore``), the staged file's mtime going
  with its upload.  chmod and chown are accepted and not stored: every file
  shows the mount's owner and the portal's permission (docs/SEMANTICS.md).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
from dataclasses import dataclass

import trio

from cache import BaseFetch, BlockCache, MtimeStore, StagedFile, StagingStore
from vfs import saves
from vfs.attributes import Attributes, Entry, OpenFile
from vfs.backends.base import Path, RemoteEntry, WritableBackend
from vfs.early_uploads import EARLY_MIN
from vfs.errors import VfsError, backend_errors, staging_errors
from vfs.exclusions import Exclusions
from vfs.inodes import Kind, Node
from vfs.overlay import Overlay, entry_of, identity_of, local_identity
from vfs.reading import FsConfig, Reading, StagedCopyGone, _FileHandle, bounded, staged_record_id
from vfs.uploads import UPLOADED, UploadQueue

log = logging.getLogger("vfs")

#: bytes copied per step when a backup is kept locally
COPY_CHUNK = 4 << 20


@dataclass
class WriteBack:
    """What the write path needs besides the read side: where to stage, how to upload."""

    store: StagingStore
    mtimes: MtimeStore
    exclusions: Exclusions = dataclasses.field(default_factory=Exclusions)
    #: seconds of quiet after the last change before a file is uploaded
    delay: float = 2.0
    #: uploads running at once
    workers: int = 4
    #: a file being written starts going up once it is this large (0: only once closed; vfs.early_uploads)
    early_upload: int = EARLY_MIN


class Writing(Reading):
    def __init__(self, backend: WritableBackend, cache: BlockCache, config: FsConfig, root_path: Path,
                 root: RemoteEntry, writes: WriteBack | None = None) -> None:
        super().__init__(backend, cache, config, root_path, root)
        self.writes = writes
        self.vacancies = saves.Vacancies()
        self._stage_lock = trio.Lock()
        if writes is None:
            self.uploads: UploadQueue | None = None
            return
        self.writable_backend = backend
        self.store = writes.store
        self.mtimes = writes.mtimes
        self.overlay = Overlay(writes.store.records())
        self.uploads = UploadQueue(backend, writes.store, self, fetch_base=self._base_fetch,
                                   exclusions=writes.exclusions, delay=writes.delay, workers=writes.workers,
                                   early_upload=writes.early_upload)

    # ------------------------------------------------------------ checks

    def _require_writes(self) -> None:
        if self.writes is None:
            raise VfsError(errno.EROFS, "this mount is read-only")

    def _check_writable(self, node: Node) -> None:
        self._require_writes()
        if node.kind.read_only:
            raise VfsError(errno.EROFS, "snapshots are read-only")
        if node.entry is not None and not node.entry.writable:
            raise VfsError(errno.EACCES, f"{node.name} is read-only on the portal")

    def _check_name(self, name: str) -> None:
        with backend_errors(f"the name {name!r}"):
            self.writable_backend.check_name(name)

    # ------------------------------------------------------------ staging

    def _base_fetch(self, record: StagedFile) -> BaseFetch:
        """How a staged file reads the parts it has not copied: its base version, through the block cache."""
        object_id, version = record.object_id, record.base_version
        if object_id is None or version is None:
            async def nothing(offset: int, length: int) -> bytes:
                raise VfsError(errno.EIO, "a new file has no base version")
            return nothing
        base = RemoteEntry(path=record.path, is_dir=False, size=record.base_size, mtime=0.0,
                           object_id=object_id, version=version)

        def path_now() -> Path:
            return (self.overlay.get(record.id) or record).path  # renamed since this fetch was made?

        async def fetch(offset: int, length: int) -> bytes:
            # Backend errors pass as they are: the upload queue decides on them, FUSE callers map them.
            return await self._read_version(base, offset, length, path_now)

        return fetch

    async def _stage(self, node: Node, *, truncate: bool = False) -> StagedFile:
        """The node's staged copy, made now if it has none (one per file, however many handles)."""
        async with self._stage_lock:
            record = self._live_record(staged_record_id(node.entry), node)
            if record is not None:
                if truncate and record.size:
                    with staging_errors(f"truncate {node.name}"):
                        await self.store.truncate(record.id, 0, self._base_fetch(record))
                    record = self._refresh(node, record.id)
                return record
            entry = node.entry
            assert entry is not None and not entry.is_dir
            with staging_errors(f"stage {node.name}"):
                record = await self.store.create(
                    self.inodes.remote_path(node), object_id=entry.object_id, base_version=entry.version,
                    base_size=entry.size, truncate=truncate, mtime=self._mtime(node))
            self._track(node, record)
            return record

    def _track(self, node: Node, record: StagedFile) -> None:
        """Show ``record`` as ``node`` from now on."""
        entry = entry_of(record)
        if node.detached:  # unlinked while open: written on, never shown or uploaded
            node.orphan_record = record.id
            node.entry = entry
            return
        self.overlay.put(record)
        if node.key != entry.object_id:
            self.inodes.rekey(node, entry.object_id)
        if node.cached_version == (node.entry.version if node.entry else None):
            node.cached_version = entry.version  # every change from here on goes through the kernel
        node.entry, node.confirmed_at = entry, trio.current_time()

    def _refresh(self, node: Node | None, record_id: int) -> StagedFile:
        record = self.store.get(record_id)
        self._show(node, record)
        return record

    def _show(self, node: Node | None, record: StagedFile) -> None:
        """Let the overlay and the node show ``record`` (an orphan — unlinked, still open — stays hidden)."""
        if node is None or node.orphan_record != record.id:
            self.overlay.put(record)
        if node is not None:
            node.entry = entry_of(record)

    def _node_of(self, record: StagedFile) -> Node | None:
        """The node showing ``record`` (by the identity it has now), if the kernel knows one."""
        return self.inodes.by_key(identity_of(self.overlay.get(record.id) or record))

    def _live_record(self, record_id: int | None, node: Node) -> StagedFile | None:
        """The record if it is still staged: shown in the overlay, or the node's orphan."""
        if record_id is None:
            return None
        record = self.overlay.get(record_id)
        if record is None and node.orphan_record == record_id:
            try:
                record = self.store.get(record_id)
            except KeyError:
                return None
        return record

    async def _commit(self, record_id: int, node: Node | None) -> StagedFile:
        with staging_errors("save"):
            meta = self.store.get(record_id).meta
            # The content is no longer the version uploaded at an fsync: the mark goes in the
            # same transaction, or a crash in between would pass new content off as uploaded.
            cleared = {k: v for k, v in meta.items() if k != UPLOADED} if UPLOADED in meta else None
            # state: a new change is a new attempt, even after a refusal
            record = await self.store.commit(record_id, state="pending", meta=cleared)
        self._show(node, record)
        return record

    # ------------------------------------------------------------ opening

    @bounded
    async def create(self, parent_inode: int, name: str, flags: int) -> tuple[OpenFile, Entry]:
        parent = self._node(parent_inode)
        if not parent.is_dir:
            raise VfsError(errno.ENOTDIR)
        self._check_writable(parent)
        self._check_name(name)
        existing = await self._child_entry(parent, name)
        if existing is not None:
            if flags & os.O_EXCL:
                raise VfsError(errno.EEXIST)
            node = self._learn(parent, self._live_or_snapshot_child(parent, existing))
            self.inodes.remember(node)
            opened = await self._open_for_writing(node, flags)
            return opened, self._entry(node)
        path = (*self.inodes.remote_path(parent), name)
        await self._reuse_name(path)
        with staging_errors(f"create {name}"):
            record = await self.store.create(path, truncate=True)
            donor = self.vacancies.claim(path)
            if donor is not None:
                record = await self.store.update(record.id, meta=saves.with_donor(record.meta, donor))
        self.overlay.put(record)
        node = self.inodes.learn(parent, name, Kind.LIVE, local_identity(record.id), entry_of(record),
                                 now=trio.current_time())
        node.cached_version = entry_of(record).version
        self.inodes.remember(node)
        return self._open_handle(node, record, flags), self._entry(node)

    async def _open_for_writing(self, node: Node, flags: int) -> OpenFile:
        """A writable handle; the file is staged only when it first changes (an open
        for writing that writes nothing — sqlite does that all the time — costs nothing)."""
        self._check_writable(node)
        await self._revalidate(node)
        assert node.entry is not None
        record = self._live_record(staged_record_id(node.entry), node)
        truncated = bool(flags & os.O_TRUNC) and (node.entry.size > 0 or record is not None)
        if truncated:
            record = await self._stage(node, truncate=True)
        return self._open_handle(node, record, flags, dirty=truncated)

    def _open_handle(self, node: Node, record: StagedFile | None, flags: int, *, dirty: bool = False) -> OpenFile:
        assert node.entry is not None and self.uploads is not None
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        handle = _FileHandle(node, node.entry, self.cache.stream(), writable=writable,
                             append=bool(flags & os.O_APPEND), record_id=record.id if record else None,
                             dirty=dirty)  # an O_TRUNC is a change, committed at close like a write
        if writable and record is not None:
            self.uploads.hold(record.id)
        node.open_handles += 1
        handle.direct = (flags & os.O_ACCMODE) == os.O_WRONLY and self.config.direct_writes
        return OpenFile(self._new_handle(handle), keep_cache=node.cached_version == node.entry.version,
                        direct_io=handle.direct)

    # ------------------------------------------------------------ content

    async def _read_staged(self, node: Node, record_id: int, offset: int, size: int) -> bytes:
        record = self._live_record(record_id, node)
        if record is None:
            raise StagedCopyGone(f"record {record_id}")
        with staging_errors("read"):
            return await self.store.read(record_id, offset, size, self._base_fetch(record))

    @bounded
    async def write(self, handle: int, offset: int, data: bytes) -> int:
        opened, record = await self._ensure_staged(handle)
        record_id = record.id
        if opened.append:
            offset = record.size
        with staging_errors(f"write {opened.node.name}"):
            written = await self.store.write(record_id, offset, data, self._base_fetch(record))
        if opened.direct:
            # The kernel dropped others' cached pages of this range before the
            # write, but a read racing it may have cached old bytes again: the
            # next open must not keep the page cache (mount/kernel.py).
            opened.node.cached_version = None
        opened.dirty = True
        record = self._refresh(opened.node, record_id)
        if opened.node.orphan_record != record_id and self.uploads is not None:  # an unlinked file: never
            self.uploads.written(record, offset + written)
        return written

    async def _ensure_staged(self, handle: int) -> tuple[_FileHandle, StagedFile]:
        """The handle and its record, staging the file now if this is its first change
        (or its staged copy was uploaded, by an fsync, while the handle stayed open)."""
        opened = self._handles.get(handle)
        if not isinstance(opened, _FileHandle):
            raise VfsError(errno.EBADF)
        if not opened.writable:
            raise VfsError(errno.EBADF, "not open for writing")
        record = self._live_record(opened.record_id, opened.node)
        if record is None:
            assert self.uploads is not None
            if opened.record_id is not None:
                self.uploads.unhold(opened.record_id)
            opened.record_id = None
            record = await self._stage(opened.node)
            opened.record_id = record.id
            self.uploads.hold(record.id)
        return opened, record

    async def flush(self, handle: int) -> None:
        """``close()``: make what this handle wrote durable, then let the queue take it.

        Every ``close()`` of every file comes here; one that wrote nothing
        returns before any timeout is armed (cheap, since readers are many).
        """
        opened = self._handles.get(handle)
        if not isinstance(opened, _FileHandle) or not opened.writable or opened.record_id is None:
            await trio.lowlevel.checkpoint()
            return
        await self._flush_written(opened)

    @bounded
    async def _flush_written(self, opened: _FileHandle) -> None:
        await self._settle(opened)

    async def _settle(self, opened: _FileHandle) -> StagedFile | None:
        """Commit what is staged for the handle's file (if anything changed) and queue it."""
        assert self.uploads is not None
        record_id = opened.record_id
        if opened.node.orphan_record is not None and opened.node.orphan_record == record_id:
            return None  # unlinked: discarded at its last close, never uploaded
        if record_id is None or self.overlay.get(record_id) is None:
            record_id = staged_record_id(opened.node.entry)  # staged through another handle
        record = self.overlay.get(record_id) if record_id is not None else None
        if record is None:
            return None
        if opened.dirty or record.state == "open":
            record = await self._commit(record.id, opened.node)
            opened.dirty = False
        self.uploads.schedule(record)
        return record

    @bounded
    async def fsync(self, handle: int, datasync: bool = False) -> None:
        """Durable locally, then confirmed by the portal (excluded names: locally only)."""
        opened = self._handles.get(handle)
        if not isinstance(opened, _FileHandle):
            raise VfsError(errno.EBADF)
        record = await self._settle(opened)
        if record is not None:
            assert self.uploads is not None
            await self.uploads.upload_now(record)

    async def release(self, handle: int) -> None:
        opened = self._handles.get(handle)
        if isinstance(opened, _FileHandle) and opened.writable and opened.record_id is not None:
            assert self.uploads is not None
            try:
                with trio.CancelScope(shield=True):
                    await self._settle(opened)  # commits only if dirty; (re)queues it in any case
            finally:
                self.uploads.unhold(opened.record_id)
        await super().release(handle)
        if isinstance(opened, _FileHandle):
            await self._after_last_close(opened.node)

    async def _after_last_close(self, node: Node) -> None:
        """Hook: an unlinked staged file is discarded when its last handle closes."""

    async def _reuse_name(self, path: Path) -> None:
        """Hook: a new file takes ``path`` (the namespace side clears what still holds it)."""

    # ------------------------------------------------------------ attributes

    @bounded
    async def setattr(self, inode: int, *, size: int | None = None, mtime: float | None = None,
                      handle: int | None = None, mode: int | None = None, uid: int | None = None,
                      gid: int | None = None) -> Attributes:
        node = self._node(inode)
        if size is None and mtime is None:
            if node.kind.read_only and (mode is not None or uid is not None or gid is not None):
                raise VfsError(errno.EROFS, "snapshots are read-only")
            return self._attributes(node)  # chmod/chown: accepted, not stored (module docstring)
        self._check_writable(node)
        if node.is_dir and size is not None:
            raise VfsError(errno.EISDIR)
        await self._revalidate(node)
        assert node.entry is not None and self.mtimes is not None
        if size is None and (node.is_dir or staged_record_id(node.entry) is None):
            # Only the time changes: remember it for this version; uploading the same bytes
            # again would make a version per `touch` (and `rsync -t` would re-send everything).
            assert mtime is not None
            self.mtimes.put(node.entry.object_id, node.entry.version, mtime)
            return self._attributes(node)
        record = await self._stage(node)
        with staging_errors(f"setattr {node.name}"):
            if size is not None:
                await self.store.truncate(record.id, size, self._base_fetch(record))
            if mtime is not None:
                await self.store.set_mtime(record.id, mtime)
        self._refresh(node, record.id)
        writers = [h for h in self._handles.values()
                   if isinstance(h, _FileHandle) and h.writable and h.record_id == record.id]
        for writer in writers:
            writer.dirty = True  # committed at its close
        if not writers:  # a truncate(2)/utimes(2) by path is a whole change
            record = await self._commit(record.id, node)
            assert self.uploads is not None
            self.uploads.schedule(record)
        return self._attributes(node)

    # ------------------------------------------------------------ upload callbacks

    def uploaded(self, record: StagedFile, entry: RemoteEntry, *, finished: bool) -> None:
        node = self._node_of(record)
        if finished:
            self.overlay.remove(record.id)
            assert self.mtimes is not None  # uploads exist only on a writable mount
            self.mtimes.put(entry.object_id, entry.version, record.mtime)
        else:
            self.overlay.put(record)
        parent = self._parent_of_path(entry.path)
        if parent is not None:
            self.listings.patch(parent.key, entry.name, entry)
        if node is None:
            return
        if node.key != entry.object_id:
            self.inodes.rekey(node, entry.object_id)
        if finished:
            if node.cached_version == entry_of(record).version:
                node.cached_version = entry.version
            if entry.name != node.name and parent is not None:  # a conflict copy
                self.inodes.learn(parent, entry.name, node.kind, node.key, entry, now=trio.current_time())
            node.entry, node.confirmed_at = entry, trio.current_time()
            for opened in self._handles.values():
                if isinstance(opened, _FileHandle) and opened.node is node:
                    opened.entry = entry
        else:
            node.entry = entry_of(record)

    async def keep_backup(self, donor: saves.Donor) -> None:
        """The donor is about to be taken back from a backup name it was renamed to (vim's
        ``NAME~``, Word's ``~WRL0001.tmp``) while that backup still exists here: keep the
        backup's bytes as a local-only file under that name, as a disk would (the block
        cache usually has them: the editor read the file)."""
        entry = await self.backend.stat(donor.path)
        with staging_errors(f"keep the backup {'/'.join(donor.path)}"):
            record = await self.store.create(donor.path, truncate=True, mtime=entry.mtime)
            for offset in range(0, entry.size, COPY_CHUNK):
                data = await self._read_version(entry, offset, COPY_CHUNK)
                await self.store.write(record.id, offset, data, self._base_fetch(record))
            record = await self.store.commit(record.id, state="pending")
        self.overlay.put(record)
        parent = self._parent_of_path(donor.path)
        node = self.inodes.child(parent, donor.path[-1]) if parent is not None else None
        if node is not None and node.key == donor.object_id:
            self.inodes.rekey(node, local_identity(record.id))
            node.entry = entry_of(record)

    def may_reclaim(self, donor: saves.Donor) -> bool:
        """Not while the donor is edited here (a staged copy of it) or open under its other name."""
        if any(record.object_id == donor.object_id for record in self.overlay):
            return False
        node = self.inodes.by_key(donor.object_id)
        # (open for reading only after an unlink at the same name: a viewer of a document being saved)
        return node is None or node.open_handles == 0 or node.detached

    def reclaimed(self, donor: saves.Donor, record: StagedFile) -> None:
        """The donor is back at the record's path: the record's inode now stands for it."""
        for path in (donor.path, record.path):
            parent = self._parent_of_path(path)
            if parent is not None:
                self.listings.invalidate(parent.key)
        heir = self.inodes.by_key(local_identity(record.id))
        if heir is not None:
            self.inodes.rekey(heir, donor.object_id)  # detaches the donor's old node, if any
            heir.entry = entry_of(record)
        self.overlay.put(record)

    def forgotten(self, record: StagedFile) -> None:
        """A staged copy dropped without the portal's entry: the node asks the portal next time."""
        node = self._node_of(record)
        self.overlay.remove(record.id)
        if node is not None and staged_record_id(node.entry) == record.id:
            node.confirmed_at = 0.0
            node.entry = dataclasses.replace(entry_of(record), version="")  # not staged; revalidated
        parent = self._parent_of_path(record.path)
        if parent is not None:
            self.listings.invalidate(parent.key)

    def conflicted(self, record: StagedFile, entry: RemoteEntry) -> None:
        parent = self._parent_of_path(record.path)
        if parent is not None:
            self.listings.invalidate(parent.key)

    def _parent_of_path(self, path: Path) -> Node | None:
        """The node of the folder holding ``path``, if the kernel knows it."""
        folder = path[:-1]
        node = self.inodes.root
        root = self.inodes.remote_path(node)
        if folder[:len(root)] != root:
            return None
        for name in folder[len(root):]:
            child = self.inodes.child(node, name)
            if child is None:
                return None
            node = child
        return node
