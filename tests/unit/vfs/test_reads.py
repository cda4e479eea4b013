"""Content: exact bytes at any offset, the kernel page cache (``keep_cache``), stale versions.

Every expectation is what a plain whole-file ``GET`` returns for the same
path at that moment, so the filesystem is judged against the portal.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.portal_process import PortalProcess
from tests.unit.vfs import bridge
from tests.unit.vfs.graph import Mounted, open_filesystem
from tests.unit.vfs.truth import download, in_thread, mkdir, upload
from vfs.errors import VfsError
from vfs.filesystem import FsConfig


@pytest.mark.parametrize("path", ["Large files/large-1.bin", "Documents/Report.txt", "Photos/IMG_1003.png"])
async def test_reads_at_random_offsets_are_the_portal_bytes(
    sample: Mounted, sample_portal: PortalProcess, path: str
) -> None:
    expected = await in_thread(download, sample_portal, path)
    inode = await sample.inode(path)
    assert (await sample.fs.getattr(inode)).size == len(expected)
    opened = await sample.fs.open(inode, os.O_RDONLY)
    size = len(expected)

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(offset=st.integers(0, size + 100) | st.sampled_from([0, size - 1, size, 4095, 4096, 4097]),
           length=st.integers(0, 200_000) | st.sampled_from([1, 4096, 131072]))
    def read_matches(offset: int, length: int) -> None:
        data = bridge.call(sample.fs.read, opened.handle, max(0, offset), length)
        assert data == expected[max(0, offset):max(0, offset) + length]

    try:
        await bridge.run_in_worker(read_matches)
    finally:
        await sample.fs.release(opened.handle)


async def test_a_whole_large_file_through_one_handle(sample: Mounted, sample_portal: PortalProcess) -> None:
    expected = await in_thread(download, sample_portal, "Large files/large-1.bin")
    assert await sample.read_all(await sample.inode("Large files/large-1.bin")) == expected


# ---------------------------------------------------------------- versions


TTL = 0.2


@pytest.fixture
async def fresh(portal: PortalProcess, tmp_path: Path) -> AsyncIterator[Mounted]:
    await in_thread(mkdir, portal, "Work")
    config = FsConfig(listing_ttl=TTL, entry_timeout=TTL, attr_timeout=TTL)
    async with open_filesystem(portal, tmp_path / "cache", config) as mounted:
        yield mounted


async def refreshed() -> None:
    """Let every listing and attribute the filesystem holds age past its TTL."""
    await trio.sleep(TTL * 1.5)


async def open_read_release(mounted: Mounted, inode: int) -> tuple[bool, bytes]:
    opened = await mounted.fs.open(inode, os.O_RDONLY)
    try:
        return opened.keep_cache, await mounted.fs.read(opened.handle, 0, 4 << 20)
    finally:
        await mounted.fs.release(opened.handle)


async def test_keep_cache_only_for_the_version_the_kernel_already_has(fresh: Mounted, portal: PortalProcess) -> None:
    await in_thread(upload, portal, "Work/doc.txt", b"version one\n")
    doc = await fresh.inode("Work/doc.txt")
    assert await open_read_release(fresh, doc) == (False, b"version one\n")  # first open: nothing cached
    assert await open_read_release(fresh, doc) == (True, b"version one\n")  # same version again
    await refreshed()
    assert await open_read_release(fresh, doc) == (True, b"version one\n")  # re-checked, unchanged

    await in_thread(upload, portal, "Work/doc.txt", b"version two, longer\n")
    await refreshed()
    assert await fresh.names(await fresh.inode("Work")) == ["doc.txt"]  # the listing is fetched again
    assert await open_read_release(fresh, doc) == (False, b"version two, longer\n")
    assert await open_read_release(fresh, doc) == (True, b"version two, longer\n")
    assert await fresh.inode("Work/doc.txt") == doc  # a new version is the same file


async def test_a_stale_version_during_a_read_is_estale_and_the_next_open_sees_the_new_one(
    fresh: Mounted, portal: PortalProcess
) -> None:
    # 3 MiB: far more than one read plus the largest read-ahead window, so the end is never prefetched
    first = bytes(range(256)) * (3 << 12)
    await in_thread(upload, portal, "Work/data.bin", first)
    data = await fresh.inode("Work/data.bin")
    opened = await fresh.fs.open(data, os.O_RDONLY)
    assert await fresh.fs.read(opened.handle, 0, 4096) == first[:4096]

    second = bytes(reversed(first)) + b"more"
    await in_thread(upload, portal, "Work/data.bin", second)
    # the handle still describes the first version; a block it never read must not come from the second
    with pytest.raises(VfsError) as caught:
        await fresh.fs.read(opened.handle, len(first) - 4096, 4096)
    assert caught.value.errno == errno.ESTALE
    await fresh.fs.release(opened.handle)

    # no waiting for any TTL: the next open asks the portal again
    keep_cache, content = await open_read_release(fresh, data)
    assert (keep_cache, content) == (False, second)
    assert content == await in_thread(download, portal, "Work/data.bin")


async def test_a_same_size_rewrite_is_not_served_from_old_blocks(fresh: Mounted, portal: PortalProcess) -> None:
    """Two versions of equal size, possibly within the same second: only the ETag tells them apart."""
    first = b"A" * (3 << 20)
    second = b"B" * (3 << 20)
    await in_thread(upload, portal, "Work/same.bin", first)
    same = await fresh.inode("Work/same.bin")
    opened = await fresh.fs.open(same, os.O_RDONLY)
    assert await fresh.fs.read(opened.handle, 0, 4096) == first[:4096]
    await in_thread(upload, portal, "Work/same.bin", second)
    with pytest.raises(VfsError) as caught:
        await fresh.fs.read(opened.handle, len(first) - 3136, 3136)
    assert caught.value.errno == errno.ESTALE
    await fresh.fs.release(opened.handle)
    keep_cache, content = await open_read_release(fresh, same)
    assert not keep_cache
    assert content == second
