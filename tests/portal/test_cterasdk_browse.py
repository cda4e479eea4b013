"""Browsing the seeded sample portal with the unmodified vendor SDK (read-only).

The sample tree (``portal/sample.py``) is deterministic in shape: each end
user has ``Documents`` (``Report.txt`` in three versions, ``Old notes.txt``
deleted), ``Photos`` (12 PNGs), ``Projects/Apollo/Design``, ``Many files``
(3000 entries) and ``Large files``.  These tests only read it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cterasdk import ServicesPortal
from cterasdk.core.types import TypeFilter
from cterasdk.exceptions.io.core import GetMetadataError, NotADirectoryException, ObjectNotFoundError

from tests.support.portal_process import PortalProcess
from tests.support.sdk import user_session

DOCUMENTS = "My Files/Documents"
REPORT = f"{DOCUMENTS}/Report.txt"
ODD_NAME = "q1 & q2 résumé #1.txt"


@pytest.fixture
def alice(sample_portal: PortalProcess) -> Iterator[ServicesPortal]:
    with user_session(sample_portal, "alice") as client:
        yield client


def download_bytes(client: ServicesPortal, path: str, tmp_path: Path) -> bytes:
    """Download ``path`` with the SDK into a fresh directory and read it back."""
    target = tmp_path / f"dl-{len(list(tmp_path.iterdir()))}"
    target.mkdir()
    saved = client.files.download(path, destination=str(target) + "/")
    return Path(saved).read_bytes()


def test_root_lists_the_personal_cloud_folder(alice: ServicesPortal) -> None:
    (entry,) = list(alice.files.listdir("/"))
    assert (entry.name, entry.is_dir, entry.deleted) == ("My Files", True, False)
    assert entry.volume is not None and entry.volume.name == "My Files"
    assert entry.volume.owner.name == "alice"


def test_listdir_shows_names_types_and_sizes(alice: ServicesPortal) -> None:
    top = {entry.name: entry for entry in alice.files.listdir("My Files")}
    assert set(top) == {"Documents", "Photos", "Projects", "Many files", "Large files"}
    assert all(entry.is_dir for entry in top.values())
    documents = {entry.name: entry for entry in alice.files.listdir(DOCUMENTS)}
    assert set(documents) == {"Report.txt", "Budget.csv", ODD_NAME, "Meeting minutes.txt"}
    assert not any(entry.is_dir or entry.deleted for entry in documents.values())
    assert all(entry.size > 0 for entry in documents.values())
    assert str(documents[ODD_NAME].path.relative) == f"{DOCUMENTS}/{ODD_NAME}"
    large = {entry.name: entry.size for entry in alice.files.listdir("My Files/Large files")}
    assert large == {"large-1.bin": 8 << 20, "large-2.bin": 48 << 20}


def test_listdir_pages_through_thousands_of_children(alice: ServicesPortal) -> None:
    names = [entry.name for entry in alice.files.listdir("My Files/Many files")]
    assert len(names) == 3000, "every page must be fetched, none twice"
    assert names == sorted(names)
    assert set(names) == {f"entry-{index:05d}.txt" for index in range(3000)}


def test_walk_visits_every_folder_breadth_first(alice: ServicesPortal) -> None:
    seen = [str(entry.path.relative) for entry in alice.files.walk("My Files/Projects")]
    assert seen == [
        "My Files/Projects/Apollo",
        "My Files/Projects/Apollo/Design",
        "My Files/Projects/Apollo/Design/diagram.png",
        "My Files/Projects/Apollo/Design/spec.md",
    ]


def test_properties_and_exists(alice: ServicesPortal, tmp_path: Path) -> None:
    report = alice.files.properties(REPORT)
    assert (report.name, report.is_dir, report.deleted) == ("Report.txt", False, False)
    assert report.size == len(download_bytes(alice, REPORT, tmp_path))
    assert isinstance(report.id, int) and report.last_modified is not None
    assert report.volume.id == alice.files.properties("My Files").volume.id
    folder = alice.files.properties(DOCUMENTS)
    assert folder.is_dir and folder.name == "Documents"
    assert alice.files.exists(REPORT)
    assert alice.files.exists(DOCUMENTS)
    assert not alice.files.exists(f"{DOCUMENTS}/nothing here.txt")
    assert not alice.files.exists(f"{DOCUMENTS}/Old notes.txt"), "deleted items do not exist"
    with pytest.raises(GetMetadataError) as missing:
        alice.files.properties("My Files/No such folder")
    assert isinstance(missing.value.__cause__, ObjectNotFoundError)


def test_listdir_refuses_a_file_and_a_missing_folder(alice: ServicesPortal) -> None:
    with pytest.raises(NotADirectoryException):
        list(alice.files.listdir(REPORT))
    with pytest.raises((GetMetadataError, NotADirectoryException)):
        list(alice.files.listdir("My Files/No such folder"))


def test_include_deleted_shows_the_recycle_bin(alice: ServicesPortal) -> None:
    entries = {entry.name: entry for entry in alice.files.listdir(DOCUMENTS, include_deleted=True)}
    assert entries["Old notes.txt"].deleted is True
    assert entries["Report.txt"].deleted is False
    assert "Old notes.txt" not in [entry.name for entry in alice.files.listdir(DOCUMENTS)]


def test_download_returns_the_current_bytes(alice: ServicesPortal, tmp_path: Path) -> None:
    report = download_bytes(alice, REPORT, tmp_path)
    assert report.startswith(b"Quarterly report, final\n")
    odd = download_bytes(alice, f"{DOCUMENTS}/{ODD_NAME}", tmp_path)
    assert odd.startswith(b"A name that needs encoding\n")
    png = download_bytes(alice, "My Files/Photos/IMG_1003.png", tmp_path)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) == alice.files.properties("My Files/Photos/IMG_1003.png").size


def test_a_large_file_downloads_whole(alice: ServicesPortal, tmp_path: Path) -> None:
    data = download_bytes(alice, "My Files/Large files/large-1.bin", tmp_path)
    assert len(data) == 8 << 20
    saved = Path(alice.files.download("My Files/Large files", ["large-1.bin"], destination=str(tmp_path) + "/"))
    assert saved.name == "large-1.zip"
    with zipfile.ZipFile(saved) as archive:
        assert archive.namelist() == ["large-1.bin"]
        assert archive.read("large-1.bin") == data, "the ZIP and the plain download agree byte for byte"


def test_versions_lead_to_older_bytes(alice: ServicesPortal, tmp_path: Path) -> None:
    versions = alice.files.versions(REPORT)
    assert [version.current for version in versions] == [False, False, True]
    assert versions[0].start_time < versions[1].start_time < versions[2].start_time
    titles = []
    for version in versions:
        assert version.path.name == "Report.txt"
        titles.append(download_bytes(alice, version.path, tmp_path).split(b"\n", 1)[0])
    assert titles == [b"Quarterly report, first draft", b"Quarterly report, second draft", b"Quarterly report, final"]


def test_an_old_snapshot_lists_the_folder_as_it_was(alice: ServicesPortal, tmp_path: Path) -> None:
    oldest, newer, current = alice.files.versions(DOCUMENTS)
    assert current.current and str(current.path.relative) == DOCUMENTS
    then = {entry.name: entry for entry in alice.files.listdir(oldest.path)}
    assert set(then) == {"Report.txt", "Budget.csv", "Old notes.txt", ODD_NAME}
    assert not any(entry.deleted for entry in then.values())
    notes = download_bytes(alice, then["Old notes.txt"].path, tmp_path)
    assert notes.startswith(b"Notes that will be deleted\n")
    assert then["Old notes.txt"].size == len(notes)
    later = {entry.name for entry in alice.files.listdir(newer.path)}
    assert later == {"Report.txt", "Budget.csv", "Meeting minutes.txt", ODD_NAME}


def test_a_whole_folder_downloads_as_zip(alice: ServicesPortal, tmp_path: Path) -> None:
    saved = Path(alice.files.download("My Files/Projects", destination=str(tmp_path) + "/"))
    assert saved.name == "Projects.zip"
    with zipfile.ZipFile(saved) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
    assert set(files) == {"Apollo/Design/spec.md", "Apollo/Design/diagram.png"}
    assert files["Apollo/Design/spec.md"] == download_bytes(alice, "My Files/Projects/Apollo/Design/spec.md", tmp_path)
    assert files["Apollo/Design/diagram.png"] == download_bytes(
        alice, "My Files/Projects/Apollo/Design/diagram.png", tmp_path
    )


def test_an_old_snapshot_of_a_folder_downloads_as_zip(alice: ServicesPortal, tmp_path: Path) -> None:
    oldest = alice.files.versions(DOCUMENTS)[0]
    saved = Path(alice.files.download(oldest.path, destination=str(tmp_path) + "/"))
    with zipfile.ZipFile(saved) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    assert set(members) == {"Report.txt", "Budget.csv", "Old notes.txt", ODD_NAME}
    assert members["Report.txt"].startswith(b"Quarterly report, first draft\n")
    assert members["Old notes.txt"].startswith(b"Notes that will be deleted\n")


def test_a_selection_downloads_as_zip(alice: ServicesPortal, tmp_path: Path) -> None:
    saved = Path(alice.files.download(DOCUMENTS, ["Report.txt", ODD_NAME], destination=str(tmp_path) + "/"))
    assert saved.name == "Documents.zip"
    with zipfile.ZipFile(saved) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    assert set(members) == {"Report.txt", ODD_NAME}
    assert members["Report.txt"] == download_bytes(alice, REPORT, tmp_path)
    assert members[ODD_NAME] == download_bytes(alice, f"{DOCUMENTS}/{ODD_NAME}", tmp_path)


def test_search_by_extension(alice: ServicesPortal) -> None:
    found = [str(entry.path.relative) for entry in alice.files.search("My Files/Projects", [TypeFilter.eq("md")])]
    assert found == ["My Files/Projects/Apollo/Design/spec.md"]


def test_users_see_only_their_own_files(sample_portal: PortalProcess, tmp_path: Path) -> None:
    with user_session(sample_portal, "bob") as bob:
        assert [entry.name for entry in bob.files.listdir("/")] == ["My Files"]
        with user_session(sample_portal, "alice") as alice:
            alice_report = download_bytes(alice, REPORT, tmp_path)
            alice_volume = alice.files.properties("My Files").volume.id
        assert bob.files.properties("My Files").volume.id != alice_volume
        assert download_bytes(bob, REPORT, tmp_path) != alice_report, "each user's sample is seeded differently"
