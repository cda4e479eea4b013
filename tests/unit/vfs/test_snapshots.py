"""The ``.snapshots`` view: names, reachability, old bytes, read-only-ness, distinct inodes.

The expectations come from the portal itself: the snapshot folders WebDAV
shows under ``My Files/.snapshots`` (named by ISO time) and the bytes a
plain ``GET`` returns for a file inside one.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import stat

import pytest

from tests.support.portal_process import PortalProcess
from tests.unit.vfs.graph import Mounted
from tests.unit.vfs.truth import download, in_thread, propfind
from vfs.errors import VfsError
from vfs.inodes import ROOT_INODE

LABEL = re.compile(r"^@GMT-\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}$")


def label_of(portal_name: str) -> str:
    """The Samba ``shadow_copy2`` name of a portal snapshot folder named by its UTC ISO time."""
    when = dt.datetime.fromisoformat(portal_name).replace(tzinfo=dt.timezone.utc)
    return when.strftime("@GMT-%Y.%m.%d-%H.%M.%S")


async def portal_snapshots(portal: PortalProcess) -> dict[str, str]:
    """Our label → the portal's own snapshot folder name, oldest first."""
    names = sorted(child.name for child in await in_thread(propfind, portal, ".snapshots"))
    return {label_of(name): name for name in names}


async def test_snapshot_folders_are_named_for_samba(sample: Mounted, sample_portal: PortalProcess) -> None:
    expected = await portal_snapshots(sample_portal)
    assert len(expected) == 2
    snapshots = await sample.inode(".snapshots")
    names = await sample.names(snapshots)
    assert all(LABEL.match(name) for name in names), names
    assert sorted(names) == sorted(expected)


@pytest.mark.parametrize("folder", ["", "Documents", "Projects/Apollo/Design", "Many files"])
async def test_snapshots_resolve_in_every_live_folder(sample: Mounted, folder: str) -> None:
    parent = await sample.inode(folder) if folder else ROOT_INODE
    entry = await sample.fs.lookup(parent, ".snapshots")
    assert entry.attributes is not None and entry.attributes.is_dir
    assert entry.attributes.mode & 0o222 == 0  # read-only
    dotdot = await sample.fs.lookup(entry.attributes.inode, "..")
    assert dotdot.attributes is not None and dotdot.attributes.inode == parent
    labels = await sample.names(entry.attributes.inode)
    assert labels and all(LABEL.match(name) for name in labels)
    assert (await sample.fs.lookup(entry.attributes.inode, "@GMT-1999.01.01-00.00.00")).attributes is None


async def test_snapshots_show_the_folder_as_it_was(sample: Mounted, sample_portal: PortalProcess) -> None:
    snapshots = await portal_snapshots(sample_portal)
    oldest, newer = list(snapshots)
    then = await sample.inode(f"Documents/.snapshots/{oldest}")
    names = set(await sample.names(then))
    assert "Old notes.txt" in names and "Meeting minutes.txt" not in names
    assert "Meeting minutes.txt" in await sample.names(await sample.inode(f"Documents/.snapshots/{newer}"))
    # the same place reached from the root's .snapshots
    assert set(await sample.names(await sample.inode(f".snapshots/{oldest}/Documents"))) == names


async def test_older_bytes_are_readable(sample: Mounted, sample_portal: PortalProcess) -> None:
    snapshots = await portal_snapshots(sample_portal)
    live = await sample.read_all(await sample.inode("Documents/Report.txt"))
    assert live == await in_thread(download, sample_portal, "Documents/Report.txt")
    drafts = []
    for label, portal_name in snapshots.items():
        old = await sample.read_all(await sample.inode(f"Documents/.snapshots/{label}/Report.txt"))
        assert old == await in_thread(download, sample_portal, f".snapshots/{portal_name}/Documents/Report.txt")
        drafts.append(old)
    assert drafts[0].startswith(b"Quarterly report, first draft")
    assert drafts[1].startswith(b"Quarterly report, second draft")
    assert live.startswith(b"Quarterly report, final")
    # a file deleted since is still there, at its old bytes
    oldest = next(iter(snapshots))
    notes = await sample.read_all(await sample.inode(f".snapshots/{oldest}/Documents/Old notes.txt"))
    assert notes == await in_thread(
        download, sample_portal, f".snapshots/{snapshots[oldest]}/Documents/Old notes.txt")


async def test_snapshot_items_have_their_own_inode_numbers(sample: Mounted, sample_portal: PortalProcess) -> None:
    oldest, newer = list(await portal_snapshots(sample_portal))
    live = await sample.inodes(await sample.inode("Documents"))
    seen = set(live.values())
    for label in (oldest, newer):
        root = await sample.inode(f"Documents/.snapshots/{label}")
        assert root not in seen
        seen.add(root)
        for entry in await sample.listing(root, deliver=True):
            assert entry.entry.attributes is not None
            assert entry.entry.attributes.inode not in seen, (label, entry.name)
            seen.add(entry.entry.attributes.inode)
            assert entry.entry.attributes.mode & 0o222 == 0, entry.name
    # the snapshot of a live file is another inode, and looking it up again gives the same one
    report = await sample.inode(f"Documents/.snapshots/{oldest}/Report.txt")
    assert report != live["Report.txt"]
    assert await sample.inode(f"Documents/.snapshots/{oldest}/Report.txt") == report


WRITE_FLAGS = [os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND, os.O_RDWR | os.O_CREAT]


@pytest.mark.parametrize("flags", WRITE_FLAGS)
async def test_opening_for_writing_is_erofs(sample: Mounted, sample_portal: PortalProcess, flags: int) -> None:
    oldest = next(iter(await portal_snapshots(sample_portal)))
    for path in (f"Documents/.snapshots/{oldest}/Report.txt", "Documents/Report.txt"):
        inode = await sample.inode(path)
        with pytest.raises(VfsError) as caught:
            await sample.fs.open(inode, flags)
        assert caught.value.errno == errno.EROFS, path
    assert sample.fs.statistics()["handles"] == 0


async def test_folders_and_files_are_not_mistaken(sample: Mounted, sample_portal: PortalProcess) -> None:
    """``open`` of a folder is EISDIR, ``opendir`` or a lookup below a file is ENOTDIR (POSIX)."""
    oldest = next(iter(await portal_snapshots(sample_portal)))
    for folder in ("Documents", ".snapshots", f".snapshots/{oldest}", f".snapshots/{oldest}/Documents"):
        inode = await sample.inode(folder)
        with pytest.raises(VfsError) as caught:
            await sample.fs.open(inode, os.O_RDONLY)
        assert caught.value.errno == errno.EISDIR, folder
        assert stat.S_ISDIR((await sample.fs.getattr(inode)).mode), folder
    for file in ("Documents/Report.txt", f".snapshots/{oldest}/Documents/Report.txt"):
        inode = await sample.inode(file)
        with pytest.raises(VfsError) as caught:
            await sample.fs.opendir(inode)
        assert caught.value.errno == errno.ENOTDIR, file
        with pytest.raises(VfsError) as caught:
            await sample.fs.lookup(inode, ".snapshots")
        assert caught.value.errno == errno.ENOTDIR, file
    # a directory handle is no file handle and vice versa
    handle = await sample.fs.opendir(ROOT_INODE)
    with pytest.raises(VfsError) as caught:
        await sample.fs.read(handle, 0, 10)
    assert caught.value.errno == errno.EBADF
    sample.fs.releasedir(handle)
    opened = await sample.fs.open(await sample.inode("Documents/Budget.csv"), os.O_RDONLY)
    with pytest.raises(VfsError) as caught:
        list(sample.fs.readdir(opened.handle, 0))
    assert caught.value.errno == errno.EBADF
    await sample.fs.release(opened.handle)
