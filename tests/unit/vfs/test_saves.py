"""Identity-keeping saves: how applications really save, and what must reach the portal.

Few programs overwrite a document in place; they write a temporary file and
shuffle names (:mod:`vfs.saves`).  On the portal, each save below must end
as exactly **one new version of the same file** (same ``fileId``, so its
history and shares stay), with no temporary, lock or backup file left there,
and with a single upload request.  The sequences are the applications' own,
request for request, at the ``Filesystem`` level; the portal is checked by
an independent client.

The first tests cover :class:`~vfs.saves.Vacancies` (the memory of which
portal file left which name) and the donor records on their own, with trio's
``MockClock`` for the window.

The upload delay is long and trio's clock is jumped past it once the whole
sequence is done, so no upload can happen half-way through a save however
slow the machine: what is checked is the end state, not a race.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.support.portal_process import PortalProcess
from tests.support.portal_view import PortalView
from tests.unit.vfs.graph import CREATE, Mounted, open_writable
from tests.unit.vfs.truth import in_thread, upload
from vfs.saves import WINDOW, Donor, Vacancies, donor_of, with_donor, without_donor
from vfs.inodes import ROOT_INODE

DELAY = 60.0

# ---------------------------------------------------------------- vacancies


async def test_a_vacancy_is_claimed_once_within_its_window(mock_clock: trio.testing.MockClock) -> None:
    vacancies = Vacancies()
    vacancies.left(("a", "doc.txt"), "id-1", ("a", "doc.txt"), deleted=True)
    mock_clock.jump(WINDOW - 1)
    assert vacancies.claim(("a", "other.txt")) is None
    assert vacancies.claim(("a", "doc.txt")) == Donor("id-1", ("a", "doc.txt"), deleted=True)
    assert vacancies.claim(("a", "doc.txt")) is None  # claimed: gone


async def test_a_vacancy_expires_after_its_window(mock_clock: trio.testing.MockClock) -> None:
    vacancies = Vacancies()
    vacancies.left(("doc.txt",), "id-1", ("doc.txt~",), deleted=False)
    mock_clock.jump(WINDOW + 1)
    assert vacancies.claim(("doc.txt",)) is None


async def test_a_vacancy_follows_its_file_where_it_goes_next(mock_clock: trio.testing.MockClock) -> None:
    vacancies = Vacancies()
    vacancies.left(("doc.docx",), "id-1", ("~WRL0001.tmp",), deleted=False)  # renamed aside
    vacancies.left(("~WRL0001.tmp",), "id-1", ("~WRL0001.tmp",), deleted=True)  # then deleted
    assert vacancies.claim(("doc.docx",)) == Donor("id-1", ("~WRL0001.tmp",), deleted=True)
    vacancies.left(("b.txt",), "id-2", ("c.txt",), deleted=False)
    vacancies.moved("id-2", ("d.txt",))
    assert vacancies.claim(("b.txt",)) == Donor("id-2", ("d.txt",), deleted=False)


def test_donor_meta_round_trips_and_leaves_other_keys_alone() -> None:
    donor = Donor("id-7", ("My Files", "a b", "doc é.txt"), deleted=True)
    meta = with_donor({"other": "kept"}, donor)
    assert meta["other"] == "kept"

    class Record:  # only .meta is read
        pass

    record = Record()
    record.meta = meta  # type: ignore[attr-defined]
    assert donor_of(record) == donor  # type: ignore[arg-type]
    record.meta = without_donor(meta)  # type: ignore[attr-defined]
    assert record.meta == {"other": "kept"}  # type: ignore[attr-defined]
    assert donor_of(record) is None  # type: ignore[arg-type]


# ---------------------------------------------------------------- the applications


async def _write(drive: Mounted, path: str, data: bytes) -> None:
    await drive.write_file(path, data, CREATE)


async def gedit(drive: Mounted, name: str, data: bytes) -> None:
    """GLib's g_file_replace: a ``.goutputstream-XXXXXX`` temp file renamed over the document."""
    await _write(drive, ".goutputstream-Q1W2E3", data)
    await drive.rename(".goutputstream-Q1W2E3", name)


async def sed_in_place(drive: Mounted, name: str, data: bytes) -> None:
    """``sed -i``: reads the file, writes ``sedXXXXXX`` beside it (an ordinary name), renames it over."""
    await drive.read_file(name)
    await _write(drive, "sedAbC123", data)
    await drive.rename("sedAbC123", name)


async def libreoffice(drive: Mounted, name: str, data: bytes) -> None:
    """LibreOffice: a lock file, a ``luXXXX.tmp`` temp file renamed over the document, the lock removed."""
    lock = f".~lock.{name}#"
    await _write(drive, lock, b"user,host,/home/user,22.11.2026 10:10,file:///home/user/.config/libreoffice/4;")
    await _write(drive, "lu12345abcd.tmp", data)
    await drive.rename("lu12345abcd.tmp", name)
    await drive.unlink(lock)


async def word(drive: Mounted, name: str, data: bytes) -> None:
    """Word: owner file ``~$``; new content in ``~WRD0000.tmp``; the original renamed to the backup
    ``~WRL0001.tmp``; the temp renamed to the original name; the backup and owner file deleted."""
    owner = f"~${name[2:]}"
    await _write(drive, owner, b"owner")
    await _write(drive, "~WRD0000.tmp", data)
    await drive.rename(name, "~WRL0001.tmp")
    await drive.rename("~WRD0000.tmp", name)
    await drive.unlink("~WRL0001.tmp")
    await drive.unlink(owner)


async def excel(drive: Mounted, name: str, data: bytes) -> None:
    """Excel: owner file; the new content in an extension-less temp file; the original deleted; the
    temp renamed to the original name; the owner file deleted."""
    owner = f"~${name}"
    await _write(drive, owner, b"owner")
    await _write(drive, "8A3F2B10", data)
    await drive.unlink(name)
    await drive.rename("8A3F2B10", name)
    await drive.unlink(owner)


async def vim_writebackup(drive: Mounted, name: str, data: bytes) -> None:
    """vim (``backupcopy=no``): swap file; the original renamed to ``NAME~``; a new file written under
    the name; the backup and the swap file deleted."""
    swap = f".{name}.swp"
    await _write(drive, swap, b"b0VIM 9.0")
    await drive.rename(name, f"{name}~")
    await _write(drive, name, data)
    await drive.unlink(f"{name}~")
    await drive.unlink(swap)


async def overwrite_in_place(drive: Mounted, name: str, data: bytes) -> None:
    """``>`` in a shell, or vim with ``backupcopy=yes``: truncate and write the file itself."""
    await drive.write_file(name, data, os.O_WRONLY | os.O_TRUNC)


Save = Callable[[Mounted, str, bytes], Awaitable[None]]

SAVES: list[tuple[str, Save]] = [
    ("notes.txt", gedit), ("notes.txt", sed_in_place), ("report.odt", libreoffice), ("report.docx", word),
    ("budget.xlsx", excel), ("notes.txt", vim_writebackup), ("notes.txt", overwrite_in_place),
]


@pytest.mark.parametrize(("name", "save"), SAVES, ids=[save.__name__ for _, save in SAVES])
async def test_a_save_is_one_new_version_of_the_same_file(
    portal: PortalProcess, tmp_path: Path, mock_clock: trio.testing.MockClock, view: PortalView, name: str,
    save: Save,
) -> None:
    mock_clock.rate = 1.0
    await in_thread(upload, portal, name, b"version 1: the original")
    file_id = view.file_id(name)
    new = os.urandom(10_000)
    async with open_writable(portal, tmp_path, delay=DELAY) as drive:
        await save(drive, name, new)
        assert await drive.read_file(name) == new  # at once, before any upload
        mock_clock.jump(DELAY + 1)
        await drive.settled()
        assert view.read(name) == new
        assert view.file_id(name) == file_id, "the save made a new file instead of a new version"
        assert view.uploads_of(name) == 2
        assert view.names() == {name}, "a temporary, lock or backup file reached the portal"
        assert drive.backend.statistics().count("upload") == 1
        assert set(await drive.names(ROOT_INODE)) - {".snapshots"} == {name}
        assert await drive.read_file(name) == new
        assert drive.store is not None and drive.store.records() == []


async def test_a_save_into_a_deliberately_renamed_file_makes_a_new_file(
    portal: PortalProcess, tmp_path: Path, mock_clock: trio.testing.MockClock, view: PortalView
) -> None:
    """Renaming a document to an ordinary name and creating a new one under the old name is not a save:
    the renamed document keeps its identity, the new one is a new file."""
    mock_clock.rate = 1.0
    await in_thread(upload, portal, "plan.txt", b"the plan")
    file_id = view.file_id("plan.txt")
    async with open_writable(portal, tmp_path, delay=DELAY) as drive:
        await drive.rename("plan.txt", "plan-2025.txt")
        await drive.write_file("plan.txt", b"next year's plan")
        mock_clock.jump(DELAY + 1)
        await drive.settled()
    assert view.file_id("plan-2025.txt") == file_id
    assert view.read("plan-2025.txt") == b"the plan"
    assert view.read("plan.txt") == b"next year's plan" and view.file_id("plan.txt") != file_id


async def test_a_save_through_the_mount_after_an_unmount_in_between(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    """The donor is kept in the staging journal: an Excel save interrupted by a crash after the
    rename still becomes a new version of the same file at the next mount."""
    await in_thread(upload, portal, "budget.xlsx", b"version 1")
    file_id = view.file_id("budget.xlsx")
    async with open_writable(portal, tmp_path, delay=3600) as before:
        await excel(before, "budget.xlsx", b"version 2")
    assert view.names() == set()  # the original is in the recycle bin, the new content staged here
    async with open_writable(portal, tmp_path) as after:
        await after.settled()
    assert view.names() == {"budget.xlsx"}
    assert view.file_id("budget.xlsx") == file_id
    assert view.read("budget.xlsx") == b"version 2"
    assert view.uploads_of("budget.xlsx") == 2
