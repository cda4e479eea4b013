"""Metadata against the real reference portal: stat, paged listings, snapshots, quota.

The sample tree (``portal/sample.py``): alice's ``My Files`` holds
``Documents`` (Report.txt rewritten twice, Old notes.txt deleted, a name that
needs encoding), ``Photos`` (12 PNGs), ``Projects/Apollo/Design``,
``Many files`` (3000 entries) and ``Large files`` (8 MiB and 48 MiB), with two
back-dated snapshots.
"""

from __future__ import annotations

import time

import pytest

from tests.support.portal_process import PortalProcess
from tests.unit.backends.conftest import connect
from vfs.backends.base import NotADirectory, NotFound
from vfs.backends.ctera import CteraBackend

DOCS = ("My Files", "Documents")


async def list_all(backend: CteraBackend, path: tuple[str, ...], limit: int) -> list[str]:
    names: list[str] = []
    start = 0
    while True:
        page = await backend.list_page(path, start, limit)
        names += [entry.name for entry in page.entries]
        if not page.has_more:
            return names
        start = page.next_start if page.next_start is not None else start + len(page.entries)


async def test_stat_describes_folders_and_files(alice: CteraBackend) -> None:
    root = await alice.stat(())
    assert root.path == () and root.is_dir and not root.writable
    folder = await alice.stat(("My Files",))
    assert folder.is_dir and folder.writable and folder.object_id.startswith("ctera:")
    report = await alice.stat((*DOCS, "Report.txt"))
    assert not report.is_dir and report.size > 0 and report.readable and report.writable
    assert abs(report.mtime - time.time()) < 86400
    assert report.version.startswith(report.object_id.removeprefix("ctera:") + ":")
    odd = await alice.stat((*DOCS, "q1 & q2 résumé #1.txt"))
    assert odd.name == "q1 & q2 résumé #1.txt"


async def test_stat_of_a_missing_path_is_not_found(alice: CteraBackend) -> None:
    for path in ((*DOCS, "nope.txt"), ("Nope",), (*DOCS, "Report.txt", "below a file")):
        with pytest.raises(NotFound):
            await alice.stat(path)


async def test_list_a_folder(alice: CteraBackend) -> None:
    page = await alice.list_page(DOCS, 0, 100)
    assert not page.has_more
    names = [entry.name for entry in page.entries]
    assert "Report.txt" in names and "Meeting minutes.txt" in names and "q1 & q2 résumé #1.txt" in names
    assert "Old notes.txt" not in names  # deleted: in the recycle bin only
    assert all(entry.path == (*DOCS, entry.name) for entry in page.entries)
    root = await alice.list_page((), 0, 100)
    assert [entry.name for entry in root.entries] == ["My Files"]


async def test_list_errors(alice: CteraBackend) -> None:
    with pytest.raises(NotADirectory):
        await alice.list_page((*DOCS, "Report.txt"), 0, 100)
    with pytest.raises(NotFound):
        await alice.list_page(("My Files", "No such folder"), 0, 100)


async def test_paging_through_3000_entries(alice: CteraBackend) -> None:
    before = alice.statistics()
    names = await list_all(alice, ("My Files", "Many files"), 100)
    assert names == [f"entry-{n:05d}.txt" for n in range(3000)]
    after = alice.statistics()
    # listing pages only: 30 of them, nothing else
    assert after.count("list") - before.count("list") == 30
    assert after.total_requests - before.total_requests == 30
    assert after.content_bytes == before.content_bytes


async def test_a_limit_above_the_portals_page_size(alice: CteraBackend) -> None:
    page = await alice.list_page(("My Files", "Many files"), 0, 5000)
    assert len(page.entries) == 1000 and page.has_more and page.next_start == 1000
    assert len(await list_all(alice, ("My Files", "Many files"), 5000)) == 3000
    past = await alice.list_page(("My Files", "Many files"), 3000, 100)
    assert past.entries == [] and not past.has_more


async def test_snapshots_of_a_file(alice: CteraBackend) -> None:
    refs = await alice.list_snapshots((*DOCS, "Report.txt"))
    assert len(refs) == 3
    assert [ref.current for ref in refs] == [False, False, True]
    assert refs[0].taken_at < refs[1].taken_at < refs[2].taken_at
    assert refs[0].taken_at == pytest.approx(time.time() - 3 * 86400, abs=3600)
    assert refs[2].path == (*DOCS, "Report.txt")
    for ref in refs[:2]:
        assert ref.path[:2] == ("My Files", ".snapshots") and ref.path[3:] == ("Documents", "Report.txt")
        old = await alice.stat(ref.path)
        assert not old.is_dir and not old.writable


async def test_snapshots_list_like_folders(alice: CteraBackend) -> None:
    refs = await alice.list_snapshots(DOCS)
    oldest = refs[0]
    page = await alice.list_page(oldest.path, 0, 100)
    names = [entry.name for entry in page.entries]
    assert "Old notes.txt" in names and "Meeting minutes.txt" not in names  # the folder as it was
    assert all(not entry.writable for entry in page.entries)


async def test_a_deleted_file_is_found_in_snapshots_only(alice: CteraBackend) -> None:
    refs = await alice.list_snapshots(DOCS)
    old_notes = (*refs[0].path, "Old notes.txt")
    assert (await alice.stat(old_notes)).size > 0
    with pytest.raises(NotFound):
        await alice.list_snapshots((*DOCS, "Old notes.txt"))


async def test_snapshots_where_the_portal_has_none(alice: CteraBackend) -> None:
    assert await alice.list_snapshots(()) == []


async def test_quota_is_reported_through_propfind(alice: CteraBackend, root: CteraBackend) -> None:
    quota = await alice.quota()
    assert quota is not None and quota.used > 48 << 20  # the large files alone
    assert quota.available is None or quota.available > 0
    # (available tracks the portal's free disk, which other processes change meanwhile)
    assert (await alice.quota(DOCS) or quota).used == quota.used
    assert await root.quota() is None  # an administrator has no quota of their own
    for_alice = await root.quota(("Users", "alice", "My Files", "Documents"))
    assert for_alice is not None and for_alice.used == quota.used


async def test_quota_of_an_empty_drive(portal: PortalProcess) -> None:
    async with connect(portal) as backend:
        quota = await backend.quota()
    assert quota is not None and quota.used == 0
