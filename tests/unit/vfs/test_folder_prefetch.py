"""A reader going through a folder's small files costs two requests, not one per file.

Judged on the backend's own request counters and against the bytes a plain
``GET`` of each file returns.  The folder is the sample's ``Many files``
(3,000 files of about 20 bytes), read as ``tar``/``grep -r`` read it: open,
read to the end, close, one file after another in listing order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio
import trio.testing

from cache import CacheConfig, ObjectKey, open_block_cache
from tests.support.portal_process import PortalProcess
from tests.unit.vfs.graph import SMALL_BLOCKS, Mounted, PassThrough, WriteSettings, open_filesystem
from tests.unit.vfs.truth import download, in_thread, mkdir, upload
from vfs.backends.base import ProtocolError, RemoteEntry
from vfs.backends.ctera import CteraBackend
from vfs.backends.ctera.counters import RequestKind
from vfs.listings import Listing
from vfs.prefetch import REFUSALS_TO_GIVE_UP, FolderPrefetch


async def read_folder(mounted: Mounted, folder: str, count: int) -> dict[str, bytes]:
    """The first ``count`` files of ``folder`` in listing order, each opened, read and closed in turn."""
    inodes = await mounted.inodes(await mounted.inode(folder))
    names = list(inodes)[:count]
    return {name: await mounted.read_all(inodes[name]) for name in names}


def reads(mounted: Mounted) -> tuple[int, int]:
    """(one-file GETs, archive requests) the backend sent so far."""
    stats = mounted.backend.statistics()
    return stats.count(RequestKind.READ), stats.count(RequestKind.ARCHIVE)


async def test_a_reader_of_a_folder_of_small_files_costs_two_requests(
    sample: Mounted, sample_portal: PortalProcess
) -> None:
    first = await read_folder(sample, "Many files", 1)
    assert reads(sample) == (1, 0), "one file opened alone is fetched alone"
    got = await read_folder(sample, "Many files", 600)
    assert reads(sample) == (1, 1)  # the 599 others came in one archive (of the next 1,000)
    assert sample.cache.statistics().group_members == 1000
    (name,) = first
    assert got[name] == first[name] and len(got) == 600  # the first file, read again, still right
    for name in list(got)[::97]:
        assert got[name] == await in_thread(download, sample_portal, f"Many files/{name}"), name


def make_tree(portal: PortalProcess) -> dict[str, bytes]:
    """``walk/{a,b,c}/f0..f4``: three folders of five small files; their contents by path."""
    files = {f"walk/{folder}/f{index}": f"{folder}{index} ".encode() * (index + 3)
             for folder in "abc" for index in range(5)}
    mkdir(portal, "walk")
    for folder in "abc":
        mkdir(portal, f"walk/{folder}")
    for path, content in files.items():
        upload(portal, path, content)
    return files


async def test_a_walker_finds_the_next_folder_fetched_ahead(portal: PortalProcess, tmp_path: Path) -> None:
    files = await in_thread(make_tree, portal)
    async with open_filesystem(portal, tmp_path / "cache") as mounted:
        for folder in ("walk", "walk/a", "walk/b", "walk/c"):  # listed first, as os.walk and find do
            await mounted.names(await mounted.inode(folder))
        got = {f"walk/a/{name}": data for name, data in (await read_folder(mounted, "walk/a", 5)).items()}
        assert reads(mounted) == (1, 1), "one folder read through: nothing fetched for the others"
        got |= {f"walk/b/{name}": data for name, data in (await read_folder(mounted, "walk/b", 5)).items()}
        # walking into b: b's files at its first open, and c's ahead of the walker
        assert reads(mounted) == (1, 3)
        got |= {f"walk/c/{name}": data for name, data in (await read_folder(mounted, "walk/c", 5)).items()}
        assert reads(mounted) == (1, 3)
    assert got == files


async def test_a_folder_renamed_here_is_fetched_at_its_new_path(portal: PortalProcess, tmp_path: Path) -> None:
    """``mv logs logs.old; mkdir logs; <same names, same sizes>``: logs.old's files stay logs.old's."""
    old = {f"f{index}": f"old {index} ".encode() * 4 for index in range(5)}
    new = {name: data.replace(b"old", b"NEW") for name, data in old.items()}

    def before() -> None:
        mkdir(portal, "logs")
        for name, data in old.items():
            upload(portal, f"logs/{name}", data)

    def after() -> None:
        mkdir(portal, "logs")
        for name, data in new.items():
            upload(portal, f"logs/{name}", data)

    await in_thread(before)
    async with open_filesystem(portal, tmp_path / "cache", writes=WriteSettings()) as mounted:
        await mounted.names(await mounted.inode("logs"))  # its listing, with the paths of then
        await mounted.rename("logs", "logs.old")
        await in_thread(after)
        got = await read_folder(mounted, "logs.old", 5)
        assert reads(mounted)[1] == 1
    assert got == old


async def test_a_large_folder_costs_one_archive_per_group(sample_portal: PortalProcess, tmp_path: Path) -> None:
    small_groups = dataclasses.replace(SMALL_BLOCKS, group_fetch_bytes=200 * 20)  # ~200 files a request
    async with open_filesystem(sample_portal, tmp_path / "cache", cache=small_groups) as mounted:
        got = await read_folder(mounted, "Many files", 3000)
        one_by_one, archives = reads(mounted)
    assert len(got) == 3000 and all(data.startswith(b"entry ") for data in got.values())
    assert one_by_one == 1
    assert 3000 / 200 <= archives <= 3000 / 150


async def test_without_folder_prefetch_each_file_is_its_own_request(
    sample_portal: PortalProcess, tmp_path: Path
) -> None:
    off = dataclasses.replace(SMALL_BLOCKS, group_fetch_bytes=0)
    async with open_filesystem(sample_portal, tmp_path / "cache", cache=off) as mounted:
        await read_folder(mounted, "Many files", 20)
        assert reads(mounted) == (20, 0)


class NoArchives(PassThrough):
    """The real backend, except that the portal answers archive requests with nonsense."""

    def __init__(self, backend: CteraBackend) -> None:
        super().__init__(backend)
        self.archive_calls = 0

    async def read_together(self, entries: list[RemoteEntry]) -> dict[str, bytes]:
        self.archive_calls += 1
        await trio.lowlevel.checkpoint()
        raise ProtocolError("archive download: the reply is not a ZIP")


async def test_a_portal_without_archives_is_read_file_by_file_and_given_up_on(
    sample_portal: PortalProcess, tmp_path: Path
) -> None:
    async with open_filesystem(sample_portal, tmp_path / "cache", wrap=NoArchives) as mounted:
        no_archives = mounted.wrapped(NoArchives)
        read = 0
        for folder in ("Many files", "Photos", "Documents", "Projects/Apollo/Design"):
            got = await read_folder(mounted, folder, 12)
            read += len(got)
            for name in list(got)[::5]:
                assert got[name] == await in_thread(download, sample_portal, f"{folder}/{name}"), name
            if folder == "Documents":  # three refusals (a fetch ahead may be in the air as the third comes)
                await trio.testing.wait_all_tasks_blocked()
                given_up_after = no_archives.archive_calls
                assert REFUSALS_TO_GIVE_UP <= given_up_after <= REFUSALS_TO_GIVE_UP + 1
        assert no_archives.archive_calls == given_up_after  # never asked again
        assert reads(mounted) == (read, 0)


async def test_files_in_snapshots_start_no_archive(sample: Mounted) -> None:
    snapshots = await sample.inodes(await sample.inode(".snapshots"))
    oldest = min(snapshots)
    for name in ("Report.txt", "Budget.csv", "Old notes.txt"):
        await sample.read_all(await sample.inode(f".snapshots/{oldest}/Documents/{name}"))
    assert reads(sample)[1] == 0


class SlowLink:
    """A backend behind a 256 KiB/s link (virtual time): only what ``FolderPrefetch`` and readers use."""

    RATE = 256 << 10

    def __init__(self, entries: list[RemoteEntry]) -> None:
        self.content = {entry.object_id: bytes([index % 251]) * entry.size for index, entry in enumerate(entries)}
        self.groups: list[int] = []

    async def read(self, entry: RemoteEntry, offset: int, length: int) -> bytes:
        await trio.sleep(length / self.RATE)
        return self.content[entry.object_id][offset:offset + length]

    async def read_together(self, entries: list[RemoteEntry]) -> dict[str, bytes]:
        self.groups.append(len(entries))
        await trio.sleep(sum(entry.size for entry in entries) / self.RATE)
        return {entry.object_id: self.content[entry.object_id] for entry in entries}


async def test_on_a_slow_link_groups_are_sized_to_arrive_in_about_a_second(
    autojump_clock: trio.testing.MockClock,
) -> None:
    size = 16 << 10
    entries = [RemoteEntry(path=("folder", f"f{index:03d}"), is_dir=False, size=size, mtime=0.0,
                           object_id=f"id{index}", version="v1") for index in range(128)]
    link = SlowLink(entries)
    listing = Listing.of(entries, 0.0)
    config = CacheConfig(block_size=64 << 10, memory_bytes=8 << 20)
    async with open_block_cache(config) as cache:
        prefetch = FolderPrefetch(link, cache)  # type: ignore[arg-type]
        for entry in entries:  # a reader going through the folder: open, read, close
            prefetch.opened("folder", "parent", listing, entry, lambda: ("folder",), lambda: None)
            key = ObjectKey(entry.object_id, entry.version, entry.size)

            async def fetch(offset: int, length: int, entry: RemoteEntry = entry) -> bytes:
                return await link.read(entry, offset, length)

            assert await cache.read(key, 0, size, fetch) == link.content[entry.object_id]
    # 1 MiB before any rate is known, then what 256 KiB/s brings in a second
    assert link.groups == [64, 16, 16, 16, 15]
