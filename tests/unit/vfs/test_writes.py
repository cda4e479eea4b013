"""The write path of ``Filesystem``, request by request, judged by what the portal holds.

Each test drives a writable graph (:func:`tests.unit.vfs.graph.open_writable`:
the daemon's staging store, mtime store and upload queue, no kernel) with
the requests the kernel would send, and checks the portal through an
independent client (:mod:`tests.support.portal_view`), never through the
filesystem's own answers alone.  What is held here:

* content: a closed file reaches the portal; readers see staged bytes at
  once, even through handles opened before the write; ``O_TRUNC``,
  ``O_APPEND``, writes in the middle and past the end, truncation;
* attributes: times set through the mount survive the upload (the portal
  stamps its own) and a remount; inode numbers and lookup counts do not
  change when a new file gets its real ``fileId``;
* listings merge staged files with the portal's;
* refusals: ``EROFS`` under ``.snapshots`` and on a read-only graph,
  ``EINVAL``/``ENAMETOOLONG`` for names the portal would refuse, and the
  POSIX errnos of mkdir/rmdir/unlink/rename — each leaving the portal as it
  was;
* unlink of an open file keeps it readable until its last close.

A long upload delay (``delay=3600``) is used where a test must look at the
staged state: nothing can be uploaded before the test ends, without timing.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.portal_process import PortalProcess
from tests.support.portal_view import PortalView
from tests.unit.vfs.graph import CREATE, NEVER, Mounted, open_writable, refused
from tests.unit.vfs.truth import in_thread, mkdir, portal_holds, upload
from vfs.filesystem import RENAME_EXCHANGE, RENAME_NOREPLACE, FsConfig
from vfs.inodes import ROOT_INODE


@pytest.fixture
async def drive(portal: PortalProcess, tmp_path: Path) -> AsyncIterator[Mounted]:
    async with open_writable(portal, tmp_path) as mounted:
        yield mounted


@pytest.fixture
async def staging_only(portal: PortalProcess, tmp_path: Path) -> AsyncIterator[Mounted]:
    """A writable graph that never uploads during the test."""
    async with open_writable(portal, tmp_path, delay=NEVER) as mounted:
        yield mounted


# ---------------------------------------------------------------- content


async def test_a_closed_new_file_reaches_the_portal(drive: Mounted, view: PortalView) -> None:
    data = os.urandom(50_000)
    await drive.write_file("new.bin", data, chunk=4096)
    await portal_holds(view, "new.bin", data)
    await drive.settled()
    assert drive.store is not None and drive.store.records() == []
    assert view.uploads_of("new.bin") == 1
    assert await drive.read_file("new.bin") == data


async def test_a_file_in_a_new_folder_reaches_the_portal(drive: Mounted, view: PortalView) -> None:
    await drive.mkdir("a")
    await drive.mkdir("a/b")
    assert view.stat("a/b") is not None and view.stat("a/b").is_dir  # folders are created at once
    await drive.write_file("a/b/c.txt", b"deep")
    await portal_holds(view, "a/b/c.txt", b"deep")


async def test_readers_opened_before_a_write_see_the_staged_bytes(
    portal: PortalProcess, staging_only: Mounted, view: PortalView
) -> None:
    await in_thread(upload, portal, "doc.txt", b"old content")
    reader = await staging_only.open_file("doc.txt")
    assert await staging_only.fs.read(reader, 0, 100) == b"old content"
    writer = await staging_only.open_file("doc.txt", os.O_WRONLY | os.O_TRUNC)
    await staging_only.fs.write(writer, 0, b"new")
    assert await staging_only.fs.read(reader, 0, 100) == b"new"  # before close
    await staging_only.close(writer)
    assert await staging_only.fs.read(reader, 0, 100) == b"new"
    assert await staging_only.read_file("doc.txt") == b"new"  # a handle opened after
    await staging_only.fs.release(reader)
    assert (await staging_only.fs.getattr(await staging_only.inode("doc.txt"))).size == 3
    assert view.read("doc.txt") == b"old content"  # not uploaded yet: the portal is untouched


async def test_o_trunc_replaces_the_content_of_the_same_file(
    portal: PortalProcess, drive: Mounted, view: PortalView
) -> None:
    await in_thread(upload, portal, "doc.txt", b"a long original content")
    file_id = view.file_id("doc.txt")
    await drive.write_file("doc.txt", b"short", os.O_WRONLY | os.O_TRUNC)
    await portal_holds(view, "doc.txt", b"short")
    assert view.file_id("doc.txt") == file_id
    assert view.uploads_of("doc.txt") == 2


async def test_o_append_writes_at_the_end_whatever_the_offset(
    portal: PortalProcess, drive: Mounted, view: PortalView
) -> None:
    await in_thread(upload, portal, "log.txt", b"line 1\n")
    handle = await drive.open_file("log.txt", os.O_WRONLY | os.O_APPEND)
    await drive.fs.write(handle, 0, b"line 2\n")
    await drive.fs.write(handle, 3, b"line 3\n")
    await drive.close(handle)
    await portal_holds(view, "log.txt", b"line 1\nline 2\nline 3\n")


async def test_writes_in_the_middle_and_past_the_end_keep_the_other_bytes(
    portal: PortalProcess, drive: Mounted, view: PortalView
) -> None:
    original = os.urandom(20_000)  # five 4 KiB blocks: the writes need only some of them
    await in_thread(upload, portal, "data.bin", original)
    handle = await drive.open_file("data.bin", os.O_RDWR)
    await drive.fs.write(handle, 5000, b"X" * 100)
    await drive.fs.write(handle, 30_000, b"tail")  # a hole from 20,000 to 30,000
    expected = original[:5000] + b"X" * 100 + original[5100:] + bytes(10_000) + b"tail"
    assert await drive.fs.read(handle, 0, 40_000) == expected
    await drive.close(handle)
    await portal_holds(view, "data.bin", expected)
    assert view.uploads_of("data.bin") == 2


async def test_truncate_by_path_shrinks_and_extends(
    portal: PortalProcess, drive: Mounted, view: PortalView
) -> None:
    original = os.urandom(20_000)
    await in_thread(upload, portal, "data.bin", original)
    await drive.truncate("data.bin", 5000)
    await portal_holds(view, "data.bin", original[:5000])
    await drive.settled()
    await drive.truncate("data.bin", 9000)
    await portal_holds(view, "data.bin", original[:5000] + bytes(4000))


async def test_ftruncate_through_a_handle_is_uploaded_at_close(
    portal: PortalProcess, drive: Mounted, view: PortalView
) -> None:
    await in_thread(upload, portal, "data.bin", b"0123456789")
    handle = await drive.open_file("data.bin", os.O_RDWR)
    await drive.fs.setattr(await drive.inode("data.bin"), size=4, handle=handle)
    await drive.fs.write(handle, 4, b"!")
    await drive.close(handle)
    await portal_holds(view, "data.bin", b"0123!")


# ---------------------------------------------------------------- attributes

MTIME = 1_000_000_000.5  # 2001: far from any time the portal would stamp


async def test_a_set_mtime_survives_the_upload_and_a_remount(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    async with open_writable(portal, tmp_path) as drive:
        await drive.write_file("old.txt", b"made long ago")
        await drive.set_mtime("old.txt", MTIME)
        inode = await drive.inode("old.txt")
        assert (await drive.fs.getattr(inode)).mtime_ns == int(MTIME * 1e9)
        await portal_holds(view, "old.txt", b"made long ago")
        await drive.settled()
        assert (await drive.fs.getattr(inode)).mtime_ns == int(MTIME * 1e9)
        assert [entry.entry.attributes.mtime_ns for entry in await drive.listing(ROOT_INODE)
                if entry.name == "old.txt"] == [int(MTIME * 1e9)]
    async with open_writable(portal, tmp_path) as remounted:
        assert (await remounted.fs.getattr(await remounted.inode("old.txt"))).mtime_ns == int(MTIME * 1e9)


async def test_touch_of_an_unchanged_portal_file_uploads_nothing(
    portal: PortalProcess, drive: Mounted, view: PortalView
) -> None:
    await in_thread(upload, portal, "doc.txt", b"content")
    await drive.set_mtime("doc.txt", MTIME)
    assert (await drive.fs.getattr(await drive.inode("doc.txt"))).mtime_ns == int(MTIME * 1e9)
    await drive.settled()
    assert drive.backend.statistics().count("upload") == 0
    assert view.uploads_of("doc.txt") == 1


async def test_only_write_only_handles_bypass_the_kernel_page_cache_and_only_when_configured(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    for direct_writes in (True, False):
        async with open_writable(portal, tmp_path / str(direct_writes),
                                 config=FsConfig(direct_writes=direct_writes)) as drive:
            opened, _ = await drive.fs.create(ROOT_INODE, f"direct-{direct_writes}.txt", CREATE)
            assert opened.direct_io == direct_writes
            await drive.fs.write(opened.handle, 0, b"written")
            await drive.close(opened.handle)
            inode = await drive.inode(f"direct-{direct_writes}.txt")
            # After a direct write the kernel may hold stale pages (mount/kernel.py): the
            # next open must drop them; after a write through the page cache it keeps them.
            opened = await drive.fs.open(inode, os.O_RDONLY)
            assert opened.keep_cache != direct_writes
            await drive.close(opened.handle)
            for flags, direct in ((os.O_WRONLY, direct_writes), (os.O_WRONLY | os.O_APPEND, direct_writes),
                                  (os.O_RDWR, False), (os.O_RDONLY, False)):
                opened = await drive.fs.open(inode, flags)
                assert opened.direct_io == direct, (flags, direct_writes)
                await drive.close(opened.handle)
            await portal_holds(view, f"direct-{direct_writes}.txt", b"written")
            await drive.settled()  # nothing of this graph still in flight when it closes


async def test_a_new_file_keeps_its_inode_and_lookup_count_when_it_gets_a_file_id(
    drive: Mounted, view: PortalView
) -> None:
    opened, entry = await drive.fs.create(ROOT_INODE, "new.txt", CREATE)
    assert entry.attributes is not None
    inode = entry.attributes.inode
    await drive.fs.write(opened.handle, 0, b"hello")
    await drive.close(opened.handle)
    node = drive.fs.inodes.get(inode)
    assert node is not None and node.lookups == 1  # the kernel's reference from create
    await portal_holds(view, "new.txt", b"hello")
    await drive.settled()
    node = drive.fs.inodes.get(inode)
    assert node is not None and node.lookups == 1
    remote = await drive.backend.stat((*drive.root_path, "new.txt"))
    assert node.key == remote.object_id  # now known by its portal identity
    assert (await drive.fs.getattr(inode)).size == 5
    assert (await drive.fs.lookup(ROOT_INODE, "new.txt")).attributes.inode == inode  # type: ignore[union-attr]
    assert node.lookups == 2
    assert (await drive.inodes(ROOT_INODE))["new.txt"] == inode
    assert await drive.read_all(inode) == b"hello"


async def test_listings_merge_staged_files_with_the_portal(
    portal: PortalProcess, staging_only: Mounted
) -> None:
    await in_thread(mkdir, portal, "dir")
    await in_thread(upload, portal, "dir/a.txt", b"a")
    await in_thread(upload, portal, "dir/b.txt", b"b")
    await staging_only.write_file("dir/c.txt", b"a new file")
    await staging_only.write_file("dir/a.txt", b"a longer a", os.O_WRONLY | os.O_TRUNC)
    listed = await staging_only.listing(await staging_only.inode("dir"))
    sizes = {entry.name: entry.entry.attributes.size for entry in listed if entry.entry.attributes}
    assert [entry.name for entry in listed].count("a.txt") == 1
    assert sizes == {"a.txt": 10, "b.txt": 1, "c.txt": 10}


# ---------------------------------------------------------------- refusals


async def test_everything_under_snapshots_is_read_only(sample_portal: PortalProcess, tmp_path: Path) -> None:
    async with open_writable(sample_portal, tmp_path, delay=NEVER) as drive:
        snapshots = await drive.inode(".snapshots")
        label = (await drive.names(snapshots))[0]
        folder = await drive.inode(f".snapshots/{label}/Documents")
        name = next(entry.name for entry in await drive.listing(folder)
                    if entry.entry.attributes and entry.entry.attributes.size)
        file = await drive.inode(f".snapshots/{label}/Documents/{name}")
        assert await refused(drive.fs.mkdir(snapshots, "new")) == errno.EROFS
        assert await refused(drive.fs.create(snapshots, "new", CREATE)) == errno.EROFS
        assert await refused(drive.fs.create(folder, "new", CREATE)) == errno.EROFS
        assert await refused(drive.fs.mkdir(folder, "new")) == errno.EROFS
        assert await refused(drive.fs.open(file, os.O_WRONLY)) == errno.EROFS
        assert await refused(drive.fs.open(file, os.O_RDONLY | os.O_TRUNC)) == errno.EROFS
        assert await refused(drive.fs.setattr(file, size=0)) == errno.EROFS
        assert await refused(drive.fs.setattr(file, mtime=MTIME)) == errno.EROFS
        assert await refused(drive.fs.unlink(folder, name)) == errno.EROFS
        assert await refused(drive.fs.rename(folder, name, folder, "renamed")) == errno.EROFS
        assert await refused(drive.fs.rename(folder, name, ROOT_INODE, "taken out")) == errno.EROFS
        assert await refused(drive.fs.rmdir(snapshots, label)) == errno.EROFS
        assert drive.store is not None and drive.store.records() == []


async def test_a_read_only_graph_refuses_every_change(sample: Mounted) -> None:
    folder = await sample.inode("Documents")
    file = await sample.inode("Documents/Report.txt")
    assert await refused(sample.fs.create(folder, "new.txt", CREATE)) == errno.EROFS
    assert await refused(sample.fs.mkdir(folder, "new")) == errno.EROFS
    assert await refused(sample.fs.open(file, os.O_WRONLY)) == errno.EROFS
    assert await refused(sample.fs.open(file, os.O_RDWR)) == errno.EROFS
    assert await refused(sample.fs.setattr(file, size=0)) == errno.EROFS
    assert await refused(sample.fs.setattr(file, mtime=MTIME)) == errno.EROFS
    assert await refused(sample.fs.unlink(folder, "Report.txt")) == errno.EROFS
    assert await refused(sample.fs.rmdir(ROOT_INODE, "Documents")) == errno.EROFS
    assert await refused(sample.fs.rename(folder, "Report.txt", folder, "Other.txt")) == errno.EROFS
    assert sample.fs.uploads is None


REFUSED_NAMES = ["a:b", "what?", "x|y", 'say "hi"', "a<b>", "back\\slash", "star*", "trailing.", "trailing ",
                 "CON", "lpt1.txt", "tab\there"]


async def test_names_the_portal_refuses_fail_at_once_with_einval(
    portal: PortalProcess, staging_only: Mounted, view: PortalView
) -> None:
    await in_thread(upload, portal, "ok.txt", b"ok")
    for name in REFUSED_NAMES:
        assert await refused(staging_only.fs.create(ROOT_INODE, name, CREATE)) == errno.EINVAL, name
        assert await refused(staging_only.fs.mkdir(ROOT_INODE, name)) == errno.EINVAL, name
        assert await refused(staging_only.rename("ok.txt", name)) == errno.EINVAL, name
    assert view.names() == {"ok.txt"}
    assert staging_only.store is not None and staging_only.store.records() == []


async def test_a_name_over_255_bytes_is_too_long(staging_only: Mounted) -> None:
    assert await refused(staging_only.fs.create(ROOT_INODE, "é" * 128, CREATE)) == errno.ENAMETOOLONG
    assert await refused(staging_only.fs.mkdir(ROOT_INODE, "x" * 256)) == errno.ENAMETOOLONG


async def test_namespace_errnos_leave_the_portal_as_it_was(
    portal: PortalProcess, staging_only: Mounted, view: PortalView
) -> None:
    for folder in ("full", "empty", "full/sub"):
        await in_thread(mkdir, portal, folder)
    await in_thread(upload, portal, "full/inside.txt", b"inside")
    await in_thread(upload, portal, "file.txt", b"file")
    await in_thread(upload, portal, "other.txt", b"other")
    before = view.tree()
    drive = staging_only
    await drive.mkdir("staged")
    await drive.write_file("staged/only-here.txt", b"not uploaded")
    before["staged"] = None

    assert await refused(drive.rmdir("full")) == errno.ENOTEMPTY
    assert await refused(drive.rmdir("staged")) == errno.ENOTEMPTY  # its only file is staged
    assert await refused(drive.rmdir("file.txt")) == errno.ENOTDIR
    assert await refused(drive.fs.rmdir(ROOT_INODE, "missing")) == errno.ENOENT
    assert await refused(drive.unlink("empty")) == errno.EISDIR
    assert await refused(drive.fs.unlink(ROOT_INODE, "missing")) == errno.ENOENT
    assert await refused(drive.mkdir("empty")) == errno.EEXIST
    assert await refused(drive.mkdir("file.txt")) == errno.EEXIST
    assert await refused(drive.mkdir("staged/only-here.txt")) == errno.EEXIST
    assert await refused(drive.fs.create(ROOT_INODE, "file.txt", CREATE | os.O_EXCL)) == errno.EEXIST
    assert await refused(drive.fs.setattr(await drive.inode("empty"), size=0)) == errno.EISDIR
    assert await refused(drive.fs.create(await drive.inode("file.txt"), "x", CREATE)) == errno.ENOTDIR

    assert await refused(drive.rename("file.txt", "empty")) == errno.EISDIR
    assert await refused(drive.rename("empty", "file.txt")) == errno.ENOTDIR
    assert await refused(drive.rename("empty", "full")) == errno.ENOTEMPTY
    assert await refused(drive.rename("empty", "staged")) == errno.ENOTEMPTY
    assert await refused(drive.rename("file.txt", "other.txt", RENAME_NOREPLACE)) == errno.EEXIST
    assert await refused(drive.rename("file.txt", "staged/only-here.txt", RENAME_NOREPLACE)) == errno.EEXIST
    assert await refused(drive.rename("file.txt", "other.txt", RENAME_EXCHANGE)) == errno.EINVAL
    assert await refused(drive.rename("full", "full/sub/full")) == errno.EINVAL
    assert await refused(drive.fs.rename(ROOT_INODE, "missing", ROOT_INODE, "x")) == errno.ENOENT

    reader = await drive.open_file("file.txt")
    assert await refused(drive.fs.write(reader, 0, b"x")) == errno.EBADF
    await drive.fs.release(reader)
    assert view.tree() == before
    assert await drive.read_file("staged/only-here.txt") == b"not uploaded"


# ---------------------------------------------------------------- namespace


async def test_renames_and_deletes_reach_the_portal_with_identity(
    portal: PortalProcess, drive: Mounted, view: PortalView
) -> None:
    await in_thread(mkdir, portal, "from")
    await in_thread(mkdir, portal, "to")
    await in_thread(upload, portal, "from/a.txt", b"a")
    await in_thread(upload, portal, "gone.txt", b"gone")
    file_id = view.file_id("from/a.txt")
    inode = await drive.inode("from/a.txt")
    await drive.rename("from/a.txt", "to/b.txt")
    assert view.file_id("to/b.txt") == file_id and not view.exists("from/a.txt")
    assert await drive.inode("to/b.txt") == inode
    await drive.rename("to", "moved")
    assert view.file_id("moved/b.txt") == file_id
    await drive.unlink("gone.txt")
    assert not view.exists("gone.txt") and "gone.txt" in view.deleted_names()
    await drive.rmdir("from")
    assert "from" not in view.names()
    assert not await drive.exists("gone.txt") and not await drive.exists("from")


async def test_a_staged_file_renamed_before_its_upload_is_renamed_here_without_a_request(
    staging_only: Mounted,
) -> None:
    """(That it then arrives under its last name only: test_uploads.py, the delay test.)"""
    await staging_only.write_file("draft.txt", b"text")
    await staging_only.rename("draft.txt", "final.txt")
    assert staging_only.backend.statistics().count("move") == 0  # renamed here: the portal never knew it
    assert await staging_only.read_file("final.txt") == b"text"
    assert not await staging_only.exists("draft.txt")


async def test_rename_over_an_existing_portal_file_keeps_its_identity(
    portal: PortalProcess, drive: Mounted, view: PortalView
) -> None:
    await in_thread(upload, portal, "doc.txt", b"version 1")
    file_id = view.file_id("doc.txt")
    await drive.write_file("doc.txt.new", b"version 2")
    await drive.rename("doc.txt.new", "doc.txt")
    await portal_holds(view, "doc.txt", b"version 2")
    await drive.settled()
    assert view.file_id("doc.txt") == file_id
    assert view.names() == {"doc.txt"}


async def test_an_unlinked_open_staged_file_stays_readable_until_release(
    staging_only: Mounted, view: PortalView
) -> None:
    await staging_only.write_file("scratch.bin", b"scratch data")
    reader = await staging_only.open_file("scratch.bin")
    await staging_only.unlink("scratch.bin")
    assert not await staging_only.exists("scratch.bin")
    assert "scratch.bin" not in await staging_only.names(ROOT_INODE)
    assert await staging_only.fs.read(reader, 0, 100) == b"scratch data"
    assert staging_only.store is not None and len(staging_only.store.records()) == 1
    await staging_only.fs.release(reader)
    assert staging_only.store.records() == []  # discarded at the last close, never uploaded
    assert staging_only.backend.statistics().count("upload") == 0
    assert view.names() == set()


async def test_an_unlinked_open_portal_file_stays_readable_until_release(
    portal: PortalProcess, drive: Mounted, view: PortalView
) -> None:
    data = os.urandom(20_000)
    await in_thread(upload, portal, "shared.bin", data)
    reader = await drive.open_file("shared.bin")
    await drive.unlink("shared.bin")
    assert not await drive.exists("shared.bin")
    assert await drive.fs.read(reader, 0, 30_000) == data
    await drive.fs.release(reader)
    assert not view.exists("shared.bin")
    assert "shared.bin" in view.deleted_names()
