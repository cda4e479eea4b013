"""The filesystem model, complete: names change here (mkdir, rmdir, unlink, rename).

``Filesystem`` is what ``mount.operations`` adapts to FUSE: the read side
(:mod:`vfs.reading`), the content writes (:mod:`vfs.writing`) and, here,
the namespace.  Folders are created, moved and deleted on the portal at once
(cheap, and other devices see them); files are more subtle, because a file
may exist only here (staged, not uploaded yet), only there, or both:

* **A staged new file** is renamed or deleted locally: the portal never
  hears of a temp file that was renamed or removed before its upload.
* **A staged file renamed over a portal file** becomes that file's next
  version (same ``fileId``): the classic "write temp, rename over" save.
  The portal file is not touched until the upload.
* **A portal file** is moved or deleted on the portal (deletes go to its
  recycle bin).  The name it leaves is remembered (:mod:`vfs.saves`) so a
  staged file taking it soon after inherits its identity.
* ``rename`` replaces its target (POSIX), honours ``RENAME_NOREPLACE`` and
  refuses ``RENAME_EXCHANGE`` (EINVAL): the portal has no atomic swap.

Also the operations ``portalfs`` asks a running mount for (undelete, list
deleted, server-side copy, status): see :mod:`mount.control`.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
from collections.abc import Iterable
from typing import Any, NoReturn

import trio

from cache import StagedFile
from vfs.attributes import Entry
from vfs.backends.base import Path, RemoteEntry
from vfs.errors import VfsError, backend_errors, staging_errors
from vfs.inodes import Kind, Node
from vfs.overlay import entry_of, local_identity
from vfs.reading import FsConfig, bounded, staged_record_id
from vfs.saves import donor_of, with_donor, without_donor
from vfs.writing import WriteBack, Writing

__all__ = ["Filesystem", "FsConfig", "WriteBack"]

log = logging.getLogger("vfs")

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


@dataclasses.dataclass
class _Occupant:
    """What is at a name: a staged file, a portal item, or both (a staged edit of it)."""

    staged: StagedFile | None
    remote: RemoteEntry | None

    @property
    def exists(self) -> bool:
        return self.staged is not None or self.remote is not None

    @property
    def is_dir(self) -> bool:
        return self.staged is None and self.remote is not None and self.remote.is_dir

    @property
    def portal_id(self) -> str | None:
        """The identity of the portal item at this name as far as we know (None: none, or
        a file that exists only here).  A staged edit of a portal file keeps that file at
        this name on the portal until its upload, whatever the last listing says."""
        if self.staged is not None:
            return self.staged.object_id
        return self.remote.object_id if self.remote is not None else None


class Filesystem(Writing):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: unlinked portal files still open here, by path: deleted on the portal at their last close
        self._hidden: dict[Path, Node] = {}
        #: wait for pending uploads after the unmount (``portalfs unmount --no-wait`` says no)
        self.drain_on_exit = True

    async def _remote_child_entry(self, parent: Node, name: str) -> RemoteEntry | None:
        if self._hidden and (*self.inodes.remote_path(parent), name) in self._hidden:
            return None
        return await super()._remote_child_entry(parent, name)

    def _visible(self, folder: Path, entries: Iterable[RemoteEntry]) -> Iterable[RemoteEntry]:
        if not self._hidden:
            return entries
        return [entry for entry in entries if (*folder, entry.name) not in self._hidden]
    # ------------------------------------------------------------ lookups for changes

    def _live_folder(self, inode: int) -> Node:
        node = self._node(inode)
        if not node.is_dir:
            raise VfsError(errno.ENOTDIR)
        self._check_writable(node)
        return node

    async def _occupant(self, parent: Node, name: str) -> _Occupant:
        """What is at ``name`` now: an upload of it in flight is let finish first (see
        :meth:`~vfs.uploads.UploadQueue.settle`), so the answer is what the portal has."""
        path = (*self.inodes.remote_path(parent), name)
        if self.uploads is not None:
            await self.uploads.settle_under(path)
        staged = self.overlay.at(path)
        remote = await self._remote_child_entry(parent, name)
        if staged is not None and staged.object_id is None:
            remote = None if remote is None or remote.is_dir else remote
        return _Occupant(staged, remote)

    async def _is_empty(self, folder: Node) -> bool:
        self.listings.invalidate(folder.key)  # the portal's word, not a listing up to a TTL old
        listing = await self._listing(folder)
        return not listing.entries and not self.overlay.below(self.inodes.remote_path(folder))

    def _forget_name(self, parent: Node, name: str) -> None:
        node = self.inodes.child(parent, name)
        if node is not None:
            self.inodes.detach(node)
        self.listings.patch(parent.key, name, None)

    async def _drop_staged(self, record: StagedFile) -> None:
        """A staged file is deleted or replaced: stop its upload, discard it (at its last close)."""
        assert self.uploads is not None
        await self.uploads.cancel(record.id)
        self.overlay.remove(record.id)
        node = self.inodes.by_key(local_identity(record.id)) or self.inodes.by_key(record.object_id)
        if node is not None and node.open_handles and staged_record_id(node.entry) == record.id:
            node.orphan_record = record.id  # its readers keep reading it; discarded at the last close
            return
        await self._discard(record.id)

    async def _discard(self, record_id: int) -> None:
        with trio.CancelScope(shield=True), staging_errors("discard"):
            try:
                await self.store.discard(record_id)
            except KeyError:
                pass  # uploaded and dropped while we waited for it

    async def _after_last_close(self, node: Node) -> None:
        if node.pending_delete is not None and node.open_handles == 0:
            with trio.CancelScope(shield=True):
                await self._delete_hidden(node)
        record_id = node.orphan_record
        if record_id is not None and node.open_handles == 0:
            node.orphan_record = None
            await self._discard(record_id)

    def refuse_special(self, parent_inode: int) -> NoReturn:
        """symlink, link, mknod in a folder: always refused.

        The portal stores no links, devices or pipes: EPERM, what Linux answers
        where a filesystem has none (never ENOSYS, which some programs misread);
        EROFS or EACCES first where nothing at all can be made (a snapshot, a
        read-only mount or folder), as for any other change.
        """
        self._live_folder(parent_inode)
        raise VfsError(errno.EPERM, "the portal stores no links, devices or pipes")

    # ------------------------------------------------------------ folders

    @bounded
    async def mkdir(self, parent_inode: int, name: str) -> Entry:
        parent = self._live_folder(parent_inode)
        self._check_name(name)
        if (await self._occupant(parent, name)).exists:
            raise VfsError(errno.EEXIST)
        path = (*self.inodes.remote_path(parent), name)
        with backend_errors(f"mkdir {'/'.join(path)}"):
            entry = await self.writable_backend.make_folder(path)
        self.listings.patch(parent.key, name, entry)
        node = self._learn(parent, self._live_or_snapshot_child(parent, entry))
        self.listings.put(node.key, [])  # known empty: lookups inside cost no request
        self.inodes.remember(node)
        return self._entry(node)

    @bounded
    async def rmdir(self, parent_inode: int, name: str) -> None:
        parent = self._live_folder(parent_inode)
        occupant = await self._occupant(parent, name)
        if not occupant.exists:
            raise VfsError(errno.ENOENT)
        if not occupant.is_dir:
            raise VfsError(errno.ENOTDIR)
        assert occupant.remote is not None
        node = self._learn(parent, self._live_or_snapshot_child(parent, occupant.remote))
        if not await self._is_empty(node):
            raise VfsError(errno.ENOTEMPTY)
        path = (*self.inodes.remote_path(parent), name)
        with backend_errors(f"rmdir {'/'.join(path)}"):
            await self.writable_backend.delete(path)
        self._forget_name(parent, name)

    # ------------------------------------------------------------ files

    @bounded
    async def unlink(self, parent_inode: int, name: str) -> None:
        parent = self._live_folder(parent_inode)
        path = (*self.inodes.remote_path(parent), name)
        occupant = await self._occupant(parent, name)
        if not occupant.exists:
            raise VfsError(errno.ENOENT)
        if occupant.is_dir:
            raise VfsError(errno.EISDIR)
        if occupant.staged is not None:
            await self._drop_staged(occupant.staged)
        portal_id = occupant.portal_id
        if portal_id is not None:
            node = self.inodes.child(parent, name)
            if node is not None and node.open_handles and occupant.staged is None:
                # Still open: it must stay readable (POSIX), so the portal delete waits for its last
                # close.  Its name is vacant meanwhile: a staged file taking it becomes its next version.
                node.pending_delete = path
                self._hidden[path] = node
                await self._left(path, portal_id, path, deleted=False)
            else:
                try:
                    with backend_errors(f"delete {'/'.join(path)}"):
                        await self.writable_backend.delete(path)
                except VfsError as exc:
                    if exc.errno != errno.ENOENT or occupant.staged is None:
                        raise  # (a staged edit's file may have gone from the portal meanwhile)
                await self._left(path, portal_id, path, deleted=True)
        self._forget_name(parent, name)

    async def _reuse_name(self, path: Path, *, by_staged_file: bool = True) -> None:
        """A name is being reused while an unlinked-but-open portal file still holds it there.

        A staged file taking the name inherits that file (Excel's save while a viewer has the
        document open): the delete is called off and the upload becomes its next version.  A
        portal item moved onto the name needs the place: the open file is deleted now.
        """
        node = self._hidden.get(path)
        if node is None:
            return
        if by_staged_file:
            node.pending_delete = None
            del self._hidden[path]
        else:
            await self._delete_hidden(node)

    async def _delete_hidden(self, node: Node) -> None:
        path = node.pending_delete
        if path is None:
            return
        node.pending_delete = None
        self._hidden.pop(path, None)
        try:
            with backend_errors(f"delete {'/'.join(path)}"):
                await self.writable_backend.delete(path)
        except VfsError as exc:
            if exc.errno != errno.ENOENT:
                log.warning("could not delete %s after its last close: %s", "/".join(path), exc)
                return
        if node.entry is not None:
            await self._left(path, node.entry.object_id, path, deleted=True)

    async def _left(self, path: Path, object_id: str, now_at: Path, *, deleted: bool) -> None:
        """A portal file left ``path``: remember the vacancy, and point heirs at where it went."""
        self.vacancies.left(path, object_id, now_at, deleted=deleted)
        for record in self.overlay:
            donor = donor_of(record)
            if donor is not None and donor.object_id == object_id:
                moved = dataclasses.replace(donor, path=now_at, deleted=deleted)
                with staging_errors("note where a replaced file went"):
                    updated = await self.store.update(record.id, meta=with_donor(self.store.get(record.id).meta, moved))
                self.overlay.put(updated)

    # ------------------------------------------------------------ rename

    @bounded
    async def rename(self, parent_inode: int, name: str, new_parent_inode: int, new_name: str, flags: int = 0) -> None:
        if flags & RENAME_EXCHANGE:
            raise VfsError(errno.EINVAL, "the portal cannot swap two names atomically")
        parent = self._live_folder(parent_inode)
        new_parent = self._live_folder(new_parent_inode)
        self._check_name(new_name)
        source_path = (*self.inodes.remote_path(parent), name)
        target_path = (*self.inodes.remote_path(new_parent), new_name)
        if source_path == target_path:
            return
        if target_path[:len(source_path)] == source_path:
            raise VfsError(errno.EINVAL, "cannot move a folder into itself")
        source = await self._occupant(parent, name)
        if not source.exists:
            raise VfsError(errno.ENOENT)
        target = await self._occupant(new_parent, new_name)
        if target.exists:
            if flags & RENAME_NOREPLACE:
                raise VfsError(errno.EEXIST)
            if source.is_dir and not target.is_dir:
                raise VfsError(errno.ENOTDIR)
            if not source.is_dir and target.is_dir:
                raise VfsError(errno.EISDIR)
            if target.is_dir:
                assert target.remote is not None
                folder = self._learn(new_parent, self._live_or_snapshot_child(new_parent, target.remote))
                if not await self._is_empty(folder):
                    raise VfsError(errno.ENOTEMPTY)
        node = self.inodes.child(parent, name)
        await self._reuse_name(target_path, by_staged_file=source.portal_id is None)
        moved_on_portal = source.portal_id is not None and await self._rename_remote(
            source, target, source_path, target_path)
        if not moved_on_portal:
            assert source.staged is not None
            await self._rename_staged(source.staged, target, target_path)
        self.listings.patch(parent.key, name, None)
        replaced = self.inodes.child(new_parent, new_name)
        if replaced is not None and replaced is not node:
            self.inodes.detach(replaced)
        if node is not None:
            moved = self.overlay.at(target_path)
            entry = entry_of(moved) if moved is not None else (
                dataclasses.replace(node.entry, path=target_path) if node.entry is not None else None)
            if entry is not None and node.key != entry.object_id:
                self.inodes.rekey(node, entry.object_id)
            self.inodes.learn(new_parent, new_name, Kind.LIVE, node.key, entry, now=trio.current_time())
        if moved_on_portal and source.remote is not None:
            self.listings.patch(new_parent.key, new_name, dataclasses.replace(source.remote, path=target_path))
        else:
            self.listings.invalidate(new_parent.key)

    async def _rename_staged(self, record: StagedFile, target: _Occupant, target_path: Path) -> None:
        """A file only we have takes a new name: no request; over a portal file, it becomes its next version."""
        fields: dict[str, Any] = {"path": target_path}
        heir_of = None
        if target.staged is not None:
            await self._drop_staged(target.staged)
            if target.staged.object_id is not None:
                heir_of = (target.staged.object_id, target.staged.base_version, target.staged.base_size)
        if heir_of is None and target.remote is not None:
            heir_of = (target.remote.object_id, target.remote.version, target.remote.size)
        meta = self.store.get(record.id).meta  # the queue may have changed it since the overlay's copy
        if heir_of is not None:
            fields.update(object_id=heir_of[0], base_version=heir_of[1], base_size=heir_of[2],
                          meta=without_donor(meta))
        else:
            donor = self.vacancies.claim(target_path)
            if donor is not None:
                fields["meta"] = with_donor(meta, donor)
        assert self.uploads is not None
        await self.uploads.cancel(record.id)
        with staging_errors("rename"):
            updated = await self.store.update(record.id, **fields)
        self.overlay.put(updated)
        self.uploads.schedule(updated)

    async def _rename_remote(self, source: _Occupant, target: _Occupant, source_path: Path,
                             target_path: Path) -> bool:
        """Move on the portal (replacing what is there, into its recycle bin); staged files follow.

        False if the portal no longer has the source but we have it staged: then it is
        renamed locally (its upload will make it anew).  The target's staged copy is
        dropped only once the move succeeded: a refused move loses nothing.
        """
        assert source.portal_id is not None and self.uploads is not None
        replace = target.portal_id is not None or target.remote is not None
        moving = self.overlay.at_or_below(source_path)
        for record in moving:
            await self.uploads.cancel(record.id)
        try:
            with backend_errors(f"rename {'/'.join(source_path)}"):
                await self.writable_backend.move(source_path, target_path, replace=replace)
        except VfsError as exc:
            for record in moving:
                self.uploads.schedule(record)
            if exc.errno == errno.ENOENT and source.staged is not None and len(moving) == 1:
                log.warning("%s is gone from the portal; renaming the local version", "/".join(source_path))
                return False
            raise
        if target.staged is not None:
            await self._drop_staged(target.staged)
        if target.portal_id is not None:
            await self._left(target_path, target.portal_id, target_path, deleted=True)
        await self._left(source_path, source.portal_id, target_path, deleted=False)
        for record in moving:
            with staging_errors(f"rename {'/'.join(record.path)}"):
                updated = await self.store.update(record.id, path=(*target_path, *record.path[len(source_path):]))
            self.overlay.put(updated)
            self.uploads.schedule(updated)
        return True

    # ------------------------------------------------------------ for `portalfs` commands

    def status(self) -> dict[str, Any]:
        """What ``portalfs status`` shows; paths relative to the mount root."""
        root = "/".join(self.inodes.remote_path(self.inodes.root))

        def relative(item: dict[str, Any]) -> dict[str, Any]:
            return {key: value.removeprefix(root).lstrip("/") if key.endswith("path") and isinstance(value, str)
                    else value for key, value in item.items()}

        uploads = self.uploads.status() if self.uploads is not None else {}
        for key in ("pending", "in_flight"):
            uploads[key] = [relative(item) for item in uploads.get(key, [])]
        statistics = self.cache.statistics()
        return {
            "uploads": uploads,
            "conflicts": [relative(item) for item in self.uploads.conflicts] if self.uploads is not None else [],
            "errors": list(self.uploads.errors) if self.uploads is not None else [],
            "cache": {
                "memory_bytes": statistics.memory_bytes,
                "disk_bytes": statistics.disk_bytes,
                "disk_limit": self.cache.config.disk_bytes if self.cache.config.disk_dir else 0,
                "staging_bytes": self.store.usage() if self.writes is not None else 0,
            },
        }

    def _absolute(self, path: Path) -> Path:
        if any(name in ("", ".", "..") or "/" in name for name in path):
            raise VfsError(errno.EINVAL, "bad path")
        return (*self.inodes.remote_path(self.inodes.root), *path)

    async def undelete(self, path: Path) -> None:
        self._require_writes()
        absolute = self._absolute(path)
        with backend_errors(f"undelete {'/'.join(path)}"):
            await self.writable_backend.undelete(absolute)
        self._appeared(absolute)

    def _appeared(self, path: Path) -> None:
        """A name appeared on the portal behind the kernel's back: forget what we and it cached."""
        self.listings.clear()
        parent = self._parent_of_path(path)
        if parent is not None:
            self.invalidate_entry(parent.inode, path[-1])

    async def list_deleted(self, path: Path) -> list[dict[str, Any]]:
        self._require_writes()
        with backend_errors(f"list deleted items of {'/'.join(path) or '/'}"):
            entries = await self.writable_backend.list_deleted(self._absolute(path))
        return [{"name": e.name, "is_dir": e.is_dir, "size": e.size, "mtime": e.mtime} for e in entries]

    async def copy(self, source: Path, target: Path) -> None:
        self._require_writes()
        with backend_errors(f"copy {'/'.join(source)}"):
            await self.writable_backend.copy(self._absolute(source), self._absolute(target))
        self._appeared(self._absolute(target))

    def skip_drain(self) -> None:
        """``portalfs unmount --no-wait``: leave pending uploads to the journal."""
        self.drain_on_exit = False
