"""Folder listings: stable offsets, what is listed where, and renames seen in a listing.

The kernel reads a folder in buffer-sized batches and resumes each at the
``next_offset`` of the last entry it took; ``telldir``/``seekdir`` may resume
anywhere it was given.  Whatever the resume points, every entry must come
exactly once, in the order of the first pass, while the handle is open.
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest
import trio

from tests.support.portal_process import PortalProcess
from tests.unit.vfs.graph import Mounted, open_filesystem
from tests.unit.vfs.truth import in_thread, mkdir, propfind, remove, rename, upload
from vfs.errors import VfsError
from vfs.filesystem import FsConfig
from vfs.inodes import ROOT_INODE


async def test_the_listing_is_what_the_portal_lists(sample: Mounted, sample_portal: PortalProcess) -> None:
    for folder in ("Documents", "Photos", "Projects/Apollo/Design", "Large files"):
        truth = {child.name: child for child in await in_thread(propfind, sample_portal, folder)}
        listed = await sample.listing(await sample.inode(folder))
        assert sorted(entry.name for entry in listed) == sorted(truth), folder
        for entry in listed:
            attributes = entry.entry.attributes
            assert attributes is not None
            assert attributes.is_dir == truth[entry.name].is_dir, entry.name
            assert attributes.size == truth[entry.name].size, entry.name


async def test_snapshots_folder_is_listed_at_the_root_only(sample: Mounted) -> None:
    root = await sample.names(ROOT_INODE)
    assert root[0] == ".snapshots"
    assert set(root) == {".snapshots", "Documents", "Photos", "Projects", "Many files", "Large files"}
    for folder in ("Documents", "Projects", "Projects/Apollo"):
        assert ".snapshots" not in await sample.names(await sample.inode(folder)), folder


async def test_resuming_from_any_offset_gives_the_rest_exactly_once(
    sample: Mounted, sample_portal: PortalProcess
) -> None:
    many = await sample.inode("Many files")
    truth = sorted(child.name for child in await in_thread(propfind, sample_portal, "Many files"))
    assert len(truth) == 3000
    handle = await sample.fs.opendir(many)
    try:
        first = list(sample.fs.readdir(handle, 0))
        assert sorted(entry.name for entry in first) == truth
        assert [entry.next_offset for entry in first] == list(range(1, 3001))
        rng = random.Random(3000)
        # a kernel whose buffer takes a random number of entries per call
        for _ in range(3):
            seen: list[str] = []
            offset = 0
            while True:
                batch = []
                for entry in sample.fs.readdir(handle, offset):
                    batch.append(entry)
                    if len(batch) == rng.randint(1, 200):
                        break
                if not batch:
                    break
                seen.extend(entry.name for entry in batch)
                offset = batch[-1].next_offset
            assert seen == [entry.name for entry in first]
        # seekdir to any offset handed out earlier
        for entry in rng.sample(first, 20):
            rest = [e.name for e in sample.fs.readdir(handle, entry.next_offset)]
            assert rest == [e.name for e in first[entry.next_offset:]]
        assert list(sample.fs.readdir(handle, 3000)) == []
        assert list(sample.fs.readdir(handle, 5000)) == []
    finally:
        sample.fs.releasedir(handle)


async def test_offsets_stay_valid_while_the_folder_changes(portal: PortalProcess, tmp_path: Path) -> None:
    """An open handle keeps the listing it started with, whatever the portal does meanwhile."""
    await in_thread(mkdir, portal, "Box")
    for index in range(5):
        await in_thread(upload, portal, f"Box/file-{index}.txt", b"x")
    async with open_filesystem(portal, tmp_path / "cache", FsConfig(listing_ttl=0.1)) as mounted:
        box = await mounted.inode("Box")
        handle = await mounted.fs.opendir(box)
        try:
            head = [entry.name for entry in mounted.fs.readdir(handle, 0)][:2]
            await in_thread(upload, portal, "Box/file-0a.txt", b"new")
            await trio.sleep(0.2)
            assert "file-0a.txt" in await mounted.names(box)  # a new handle sees it
            rest = [entry.name for entry in mounted.fs.readdir(handle, 2)]
            assert head + rest == [f"file-{index}.txt" for index in range(5)]
        finally:
            mounted.fs.releasedir(handle)


async def test_a_known_item_keeps_its_number_across_a_remote_rename(portal: PortalProcess, tmp_path: Path) -> None:
    await in_thread(mkdir, portal, "Inbox")
    await in_thread(upload, portal, "Inbox/draft.txt", b"first words\n")
    await in_thread(upload, portal, "Inbox/unread.txt", b"read me only after the move\n")
    config = FsConfig(listing_ttl=0.2, entry_timeout=0.2, attr_timeout=0.2)
    async with open_filesystem(portal, tmp_path / "cache", config) as mounted:
        inbox = await mounted.inode("Inbox")
        draft = await mounted.inode("Inbox/draft.txt")
        unread = await mounted.inode("Inbox/unread.txt")
        assert await mounted.read_all(draft) == b"first words\n"

        await in_thread(rename, portal, "Inbox/draft.txt", "final.txt")
        await trio.sleep(0.3)
        listed = await mounted.inodes(inbox)
        assert listed == {"final.txt": draft, "unread.txt": unread}
        assert await mounted.inode("Inbox/final.txt") == draft
        assert (await mounted.resolve("Inbox/draft.txt")).attributes is None
        assert await mounted.read_all(draft) == b"first words\n"

        # a renamed folder: its children keep their numbers and are read at the new path
        await in_thread(rename, portal, "Inbox", "Archive")
        await trio.sleep(0.3)
        root = await mounted.inodes(ROOT_INODE)
        assert root["Archive"] == inbox and "Inbox" not in root
        assert await mounted.read_all(unread) == b"read me only after the move\n"
        assert await mounted.inode("Archive/unread.txt") == unread


async def test_a_file_held_open_stays_usable_across_a_remote_rename(portal: PortalProcess, tmp_path: Path) -> None:
    """POSIX: an open file survives a rename.  Inodes follow identities, so no readdir is needed first."""
    await in_thread(mkdir, portal, "Inbox")
    content = bytes(range(256)) * (3 << 12)  # 3 MiB: its end is not read ahead by the first read
    await in_thread(upload, portal, "Inbox/draft.bin", content)
    config = FsConfig(listing_ttl=0.2, entry_timeout=0.2, attr_timeout=0.2)
    async with open_filesystem(portal, tmp_path / "cache", config) as mounted:
        draft = await mounted.inode("Inbox/draft.bin")
        opened = await mounted.fs.open(draft, os.O_RDONLY)
        assert await mounted.fs.read(opened.handle, 0, 4096) == content[:4096]

        await in_thread(rename, portal, "Inbox/draft.bin", "final.bin")
        await trio.sleep(0.3)
        assert (await mounted.fs.getattr(draft)).size == len(content)  # fstat of the open file
        assert await mounted.fs.read(opened.handle, len(content) - 4096, 4096) == content[-4096:]
        await mounted.fs.release(opened.handle)
        again = await mounted.fs.open(draft, os.O_RDONLY)  # reopened through the inode the kernel holds
        assert again.keep_cache
        assert await mounted.fs.read(again.handle, 1 << 20, 4096) == content[1 << 20:(1 << 20) + 4096]
        await mounted.fs.release(again.handle)
        assert await mounted.inode("Inbox/final.bin") == draft

        # really gone: a clean ENOENT, not a read of something else
        opened = await mounted.fs.open(draft, os.O_RDONLY)
        await in_thread(remove, portal, "Inbox/final.bin")
        await trio.sleep(0.3)
        with pytest.raises(VfsError) as caught:
            await mounted.fs.read(opened.handle, 2 << 20, 4096)
        assert caught.value.errno == errno.ENOENT
        with pytest.raises(VfsError) as caught:
            await mounted.fs.getattr(draft)
        assert caught.value.errno == errno.ENOENT
        await mounted.fs.release(opened.handle)
