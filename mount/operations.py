"""The pyfuse3 adapter: kernel requests in, ``vfs.Filesystem`` calls out.

Each handler unpacks its arguments, calls one Filesystem method and packs the
answer.  All of them pass through one error funnel (:func:`funnel`): a
``VfsError`` becomes ``FUSEError`` with its errno; any other exception is a
bug, logged with its traceback and answered with ``EIO`` — pyfuse3 would
otherwise end ``main()`` and take the mount down with it.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pyfuse3

from vfs.attributes import Attributes, Entry, FsStats, OpenFile
from vfs.errors import VfsError
from vfs.filesystem import Filesystem

log = logging.getLogger("mount")

T = TypeVar("T")


def funnel(handler: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(handler)
    async def run(self: PortalOperations, *args: Any) -> T:
        try:
            return await handler(self, *args)
        except VfsError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None
        except pyfuse3.FUSEError:
            raise
        except Exception:
            log.exception("%s%r failed", handler.__name__, args[:2])
            raise pyfuse3.FUSEError(errno.EIO) from None

    return run


def _entry_attributes(attributes: Attributes, entry_timeout: float = 0.0, attr_timeout: float = 0.0) -> pyfuse3.EntryAttributes:
    out = pyfuse3.EntryAttributes()
    out.st_ino = attributes.inode
    out.generation = attributes.generation
    out.entry_timeout = entry_timeout
    out.attr_timeout = attr_timeout
    out.st_mode = attributes.mode
    out.st_nlink = attributes.nlink
    out.st_uid = attributes.uid
    out.st_gid = attributes.gid
    out.st_size = attributes.size
    out.st_blksize = 1 << 17
    out.st_blocks = attributes.blocks
    out.st_atime_ns = out.st_mtime_ns = out.st_ctime_ns = attributes.mtime_ns
    return out


def _reply(entry: Entry) -> pyfuse3.EntryAttributes:
    if entry.attributes is None:  # a negative entry: st_ino 0, cached for entry_timeout
        out = pyfuse3.EntryAttributes()
        out.st_ino = 0
        out.entry_timeout = entry.entry_timeout
        return out
    return _entry_attributes(entry.attributes, entry.entry_timeout, entry.attr_timeout)


class PortalOperations(pyfuse3.Operations):
    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, fs: Filesystem) -> None:
        super().__init__()
        self.fs = fs

    @funnel
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return _reply(await self.fs.lookup(parent_inode, os.fsdecode(name)))

    async def forget(self, inode_list: list[tuple[int, int]]) -> None:
        try:
            self.fs.forget(inode_list)
        except Exception:  # forget has no reply; it must never raise
            log.exception("forget failed")

    @funnel
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        attributes = await self.fs.getattr(inode)
        return _entry_attributes(attributes, attr_timeout=self.fs.config.attr_timeout)

    @funnel
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return await self.fs.opendir(inode)

    @funnel
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        for entry in self.fs.readdir(fh, start_id):
            assert entry.entry.attributes is not None
            attributes = _reply(entry.entry)
            if not pyfuse3.readdir_reply(token, os.fsencode(entry.name), attributes, entry.next_offset):
                return
            self.fs.delivered(entry)

    @funnel
    async def releasedir(self, fh: int) -> None:
        self.fs.releasedir(fh)

    @funnel
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        return _file_info(await self.fs.open(inode, flags))

    @funnel
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self.fs.read(fh, off, size)

    @funnel
    async def release(self, fh: int) -> None:
        await self.fs.release(fh)

    # ------------------------------------------------------------ changes

    @funnel
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        opened, entry = await self.fs.create(parent_inode, os.fsdecode(name), flags)
        return _file_info(opened), _reply(entry)

    @funnel
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self.fs.write(fh, off, buf)

    @funnel
    async def flush(self, fh: int) -> None:
        await self.fs.flush(fh)

    @funnel
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.fs.fsync(fh, datasync)

    @funnel
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        """Folder changes are made on the portal before they return: nothing to wait for."""

    @funnel
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        attributes = await self.fs.setattr(
            inode,
            size=attr.st_size if fields.update_size else None,
            mtime=attr.st_mtime_ns / 1e9 if fields.update_mtime else None,
            mode=attr.st_mode if fields.update_mode else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            handle=fh,
        )
        return _entry_attributes(attributes, attr_timeout=self.fs.config.attr_timeout)

    @funnel
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return _reply(await self.fs.mkdir(parent_inode, os.fsdecode(name)))

    @funnel
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.rmdir(parent_inode, os.fsdecode(name))

    @funnel
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.unlink(parent_inode, os.fsdecode(name))

    @funnel
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.rename(parent_inode_old, os.fsdecode(name_old), parent_inode_new, os.fsdecode(name_new), flags)

    # Links, devices and pipes: refused by the filesystem (see ``refuse_special``).
    @funnel
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self.fs.refuse_special(parent_inode)

    @funnel
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self.fs.refuse_special(new_parent_inode)

    @funnel
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self.fs.refuse_special(parent_inode)

    @funnel
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        return _statvfs(await self.fs.statfs())

    # getxattr/listxattr are deliberately not implemented: pyfuse3 answers ENOSYS,
    # which the kernel remembers for the whole mount, so `ls -l` stops asking for
    # ACLs and security labels of every file (one round trip each with ENOATTR).


def _file_info(opened: OpenFile) -> pyfuse3.FileInfo:
    return pyfuse3.FileInfo(fh=opened.handle, keep_cache=opened.keep_cache, direct_io=opened.direct_io)


def _statvfs(stats: FsStats) -> pyfuse3.StatvfsData:
    out = pyfuse3.StatvfsData()
    out.f_bsize = out.f_frsize = stats.block_size
    out.f_blocks = stats.blocks
    out.f_bfree = out.f_bavail = stats.blocks_free
    out.f_files = stats.files
    out.f_ffree = out.f_favail = stats.files_free
    out.f_namemax = stats.name_max
    return out
