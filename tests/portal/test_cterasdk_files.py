"""Changing files with the unmodified vendor SDK: mkdir, upload, rename, move,
copy, delete, undelete.

Each test gets a fresh empty portal.  Effects are checked through a second
route: a second SDK session of the same user listing and downloading again,
so a reply that merely *claims* success does not pass.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from cterasdk import ServicesPortal
from cterasdk.exceptions.io.core import (
    CopyError,
    CreateDirectoryError,
    DeleteError,
    FileConflictError,
    FilenameError,
    FolderNotFoundError,
    MoveError,
    ObjectNotFoundError,
    ReservedNameError,
)

from tests.support.portal_process import PortalProcess
from tests.support.sdk import user_session


# The SDK hands bytes uploads to aiohttp as a bare bytes form field, which
# aiohttp 3.x deprecates; that is the vendor's code path, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:In v4, passing bytes will no longer create a file field")

ODD_NAME = "50% off + naïve café #1.txt"


@pytest.fixture
def alice(portal: PortalProcess) -> Iterator[ServicesPortal]:
    with user_session(portal, "alice") as client:
        yield client


@pytest.fixture
def observer(portal: PortalProcess) -> Iterator[ServicesPortal]:
    """A second, independent session of alice: the second route to the server's state."""
    with user_session(portal, "alice") as client:
        yield client


def names(client: ServicesPortal, path: str, *, include_deleted: bool = False) -> dict[str, bool]:
    """``{name: deleted}`` of a folder's children."""
    return {entry.name: entry.deleted for entry in client.files.listdir(path, include_deleted=include_deleted)}


def fetch(client: ServicesPortal, path: str, tmp_path: Path) -> bytes:
    target = tmp_path / f"dl-{len(list(tmp_path.iterdir()))}"
    target.mkdir()
    return Path(client.files.download(path, destination=str(target) + "/")).read_bytes()


def put(client: ServicesPortal, path: str, data: bytes) -> str:
    """Upload ``data`` (the SDK accepts bytes as the handle and sizes them itself)."""
    return client.files.upload(path, data)


# ---------------------------------------------------------------- folders


def test_mkdir_and_makedirs(alice: ServicesPortal, observer: ServicesPortal) -> None:
    assert alice.files.mkdir("My Files/Reports") == "My Files/Reports"
    assert alice.files.makedirs("My Files/a/b/c") == "My Files/a/b/c"
    assert alice.files.makedirs("My Files/a/b/d") == "My Files/a/b/d", "existing ancestors are fine"
    assert names(observer, "My Files") == {"Reports": False, "a": False}
    assert names(observer, "My Files/a/b") == {"c": False, "d": False}
    assert observer.files.properties("My Files/a/b/c").is_dir


def test_mkdir_refusals_carry_the_right_cause(alice: ServicesPortal) -> None:
    alice.files.mkdir("My Files/Reports")
    with pytest.raises(CreateDirectoryError) as exists:
        alice.files.mkdir("My Files/Reports")
    assert isinstance(exists.value.__cause__, FileConflictError)
    with pytest.raises(CreateDirectoryError) as same_but_case:
        alice.files.mkdir("My Files/REPORTS")
    assert isinstance(same_but_case.value.__cause__, FileConflictError), "names compare case-insensitively"
    with pytest.raises(CreateDirectoryError) as orphan:
        alice.files.mkdir("My Files/missing/child")
    assert isinstance(orphan.value.__cause__, FolderNotFoundError)
    with pytest.raises(CreateDirectoryError) as invalid:
        alice.files.mkdir("My Files/what?")
    assert isinstance(invalid.value.__cause__, FilenameError)
    with pytest.raises(CreateDirectoryError) as reserved:
        alice.files.mkdir("My Files/CON")
    assert isinstance(reserved.value.__cause__, ReservedNameError)
    with pytest.raises(CreateDirectoryError) as snapshots:
        alice.files.mkdir("My Files/.snapshots")
    assert isinstance(snapshots.value.__cause__, ReservedNameError), "the name where snapshots appear"
    alice.files.mkdir("My Files/Reports/.snapshots")  # reserved only at the top of a cloud folder
    assert names(alice, "My Files") == {"Reports": False}


# ---------------------------------------------------------------- upload / download


def test_upload_bytes_and_download_them_back(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000 + b"tail"
    assert put(alice, "My Files/data.bin", data) == "My Files/data.bin"
    assert fetch(observer, "My Files/data.bin", tmp_path) == data
    info = observer.files.properties("My Files/data.bin")
    assert (info.size, info.is_dir) == (len(data), False)


def test_upload_file_into_a_folder_keeps_its_name(
    alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path
) -> None:
    local = tmp_path / ODD_NAME
    local.write_bytes("naïve café\n".encode() * 500)
    alice.files.mkdir("My Files/Docs")
    assert alice.files.upload_file(str(local), "My Files/Docs") == f"My Files/Docs/{ODD_NAME}"
    assert names(observer, "My Files/Docs") == {local.name: False}
    assert fetch(observer, f"My Files/Docs/{local.name}", tmp_path) == local.read_bytes()


def test_a_multi_megabyte_file_round_trips(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    local = tmp_path / "big.bin"
    local.write_bytes(random.Random(7).randbytes(5 * 1024 * 1024 + 123))
    alice.files.upload_file(str(local), "My Files")
    assert observer.files.properties("My Files/big.bin").size == local.stat().st_size
    assert fetch(observer, "My Files/big.bin", tmp_path) == local.read_bytes()


def test_upload_from_a_file_object(alice: ServicesPortal, tmp_path: Path) -> None:
    data = b"streamed " * 10000
    alice.files.upload("My Files/stream.txt", io.BytesIO(data), size=str(len(data)))
    assert fetch(alice, "My Files/stream.txt", tmp_path) == data


def test_empty_file_round_trips(alice: ServicesPortal, tmp_path: Path) -> None:
    put(alice, "My Files/empty.txt", b"")
    assert alice.files.properties("My Files/empty.txt").size == 0
    assert fetch(alice, "My Files/empty.txt", tmp_path) == b""


@pytest.mark.parametrize("name", ["日本.txt", "Ωmega", "ünï code.md", "emoji 🙂.txt"])
def test_names_beyond_latin_1_upload_and_list(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path,
                                              name: str) -> None:
    """The form's headers carry the name as UTF-8, as the SDK sends it."""
    put(alice, f"My Files/{name}", name.encode())
    assert name in names(observer, "My Files")
    assert fetch(observer, f"My Files/{name}", tmp_path) == name.encode()


def test_upload_over_a_file_makes_a_new_version_of_it(alice: ServicesPortal, tmp_path: Path) -> None:
    put(alice, "My Files/notes.txt", b"first")
    first_id = alice.files.properties("My Files/notes.txt").id
    put(alice, "My Files/notes.txt", b"second, longer")
    info = alice.files.properties("My Files/notes.txt")
    assert (info.id, info.size) == (first_id, len(b"second, longer")), "same file, new content"
    assert fetch(alice, "My Files/notes.txt", tmp_path) == b"second, longer"
    assert names(alice, "My Files") == {"notes.txt": False}


# ---------------------------------------------------------------- rename / move / copy


def test_rename_keeps_identity_and_bytes(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    put(alice, "My Files/draft.txt", b"draft body")
    file_id = alice.files.properties("My Files/draft.txt").id
    assert alice.files.rename("My Files/draft.txt", "final.txt") == "My Files/final.txt"
    assert names(observer, "My Files") == {"final.txt": False}
    assert observer.files.properties("My Files/final.txt").id == file_id
    assert fetch(observer, "My Files/final.txt", tmp_path) == b"draft body"


def test_move_files_and_folders(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.makedirs("My Files/src/inner")
    put(alice, "My Files/src/inner/deep.txt", b"deep")
    put(alice, "My Files/loose.txt", b"loose")
    alice.files.mkdir("My Files/dest")
    alice.files.move("My Files/src", "My Files/loose.txt", destination="My Files/dest")
    assert names(observer, "My Files") == {"dest": False}
    assert names(observer, "My Files/dest") == {"src": False, "loose.txt": False}
    assert fetch(observer, "My Files/dest/src/inner/deep.txt", tmp_path) == b"deep"
    assert fetch(observer, "My Files/dest/loose.txt", tmp_path) == b"loose"


def test_copy_a_folder_tree(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.makedirs("My Files/tree/sub")
    put(alice, "My Files/tree/top.txt", b"top")
    put(alice, "My Files/tree/sub/leaf.bin", b"\x00leaf\xff")
    alice.files.mkdir("My Files/backup")
    alice.files.copy("My Files/tree", destination="My Files/backup")
    assert names(observer, "My Files") == {"tree": False, "backup": False}
    assert names(observer, "My Files/backup/tree") == {"top.txt": False, "sub": False}
    assert fetch(observer, "My Files/backup/tree/sub/leaf.bin", tmp_path) == b"\x00leaf\xff"
    original = observer.files.properties("My Files/tree/top.txt").id
    assert observer.files.properties("My Files/backup/tree/top.txt").id != original, "a copy is a new file"
    put(alice, "My Files/tree/top.txt", b"changed after copy")
    assert fetch(observer, "My Files/backup/tree/top.txt", tmp_path) == b"top"


def test_copy_of_a_missing_source_reports_not_found(alice: ServicesPortal) -> None:
    alice.files.mkdir("My Files/dest")
    with pytest.raises(CopyError) as missing:
        alice.files.copy("My Files/ghost.txt", destination="My Files/dest")
    assert isinstance(missing.value.__cause__, ObjectNotFoundError)


def test_move_into_a_missing_folder_reports_it(alice: ServicesPortal) -> None:
    put(alice, "My Files/a.txt", b"a")
    with pytest.raises(MoveError) as missing:
        alice.files.move("My Files/a.txt", destination="My Files/nowhere")
    assert isinstance(missing.value.__cause__, FolderNotFoundError)
    assert names(alice, "My Files") == {"a.txt": False}


# ---------------------------------------------------------------- delete / undelete


def test_delete_then_undelete(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.makedirs("My Files/folder/inside")
    put(alice, "My Files/folder/inside/kept.txt", b"kept")
    put(alice, "My Files/gone.txt", b"gone")
    alice.files.delete("My Files/folder", "My Files/gone.txt")
    assert names(observer, "My Files") == {}
    assert not observer.files.exists("My Files/gone.txt")
    listed = list(observer.files.listdir("My Files", include_deleted=True))
    assert {entry.name: entry.deleted for entry in listed} == {"folder": True, "gone.txt": True}

    alice.files.undelete("My Files/folder", "My Files/gone.txt")
    assert names(observer, "My Files") == {"folder": False, "gone.txt": False}
    assert fetch(observer, "My Files/folder/inside/kept.txt", tmp_path) == b"kept"
    assert fetch(observer, "My Files/gone.txt", tmp_path) == b"gone"


def test_deleted_and_live_items_of_one_name(alice: ServicesPortal, tmp_path: Path) -> None:
    put(alice, "My Files/x.txt", b"old")
    alice.files.delete("My Files/x.txt")
    put(alice, "My Files/x.txt", b"new")
    listed = [(entry.name, entry.deleted) for entry in alice.files.listdir("My Files", include_deleted=True)]
    assert sorted(listed) == [("x.txt", False), ("x.txt", True)]
    assert fetch(alice, "My Files/x.txt", tmp_path) == b"new"


def test_delete_of_a_missing_item_fails(alice: ServicesPortal) -> None:
    with pytest.raises(DeleteError):
        alice.files.delete("My Files/never existed.txt")


def test_walk_with_deleted_items_enters_deleted_folders(alice: ServicesPortal, observer: ServicesPortal) -> None:
    alice.files.makedirs("My Files/old/inner")
    put(alice, "My Files/old/inner/file.txt", b"f")
    put(alice, "My Files/live.txt", b"l")
    alice.files.delete("My Files/old")
    walked = {str(entry.path.relative): entry.deleted for entry in observer.files.walk("My Files", include_deleted=True)}
    assert walked == {
        "My Files/live.txt": False,
        "My Files/old": True,
        "My Files/old/inner": True,
        "My Files/old/inner/file.txt": True,
    }
    assert [str(entry.path.relative) for entry in observer.files.walk("My Files")] == ["My Files/live.txt"]


def test_undelete_a_file_inside_a_deleted_folder(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.makedirs("My Files/old/inner")
    put(alice, "My Files/old/inner/wanted.txt", b"wanted")
    put(alice, "My Files/old/inner/unwanted.txt", b"unwanted")
    alice.files.delete("My Files/old")
    alice.files.undelete("My Files/old/inner/wanted.txt")
    assert names(observer, "My Files") == {"old": False}, "the folders above come back with it"
    assert names(observer, "My Files/old/inner") == {"wanted.txt": False}
    assert names(observer, "My Files/old/inner", include_deleted=True) == {"wanted.txt": False, "unwanted.txt": True}
    assert fetch(observer, "My Files/old/inner/wanted.txt", tmp_path) == b"wanted"


def test_names_that_need_encoding_survive_every_operation(
    alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path
) -> None:
    folder = "My Files/dir 100%+#é;'="
    name = "50% +plus #hash;semi 'q' é=x,~y@z$.txt"
    alice.files.mkdir(folder)
    put(alice, f"{folder}/{name}", b"odd bytes")
    assert names(observer, folder) == {name: False}
    assert fetch(observer, f"{folder}/{name}", tmp_path) == b"odd bytes"
    alice.files.rename(f"{folder}/{name}", "ren %2F +.txt")
    assert names(observer, folder) == {"ren %2F +.txt": False}, "an escape in a name is just characters"
    alice.files.mkdir("My Files/copies")
    alice.files.copy(folder, destination="My Files/copies")
    copied = f"My Files/copies/{folder.split('/')[1]}/ren %2F +.txt"
    assert fetch(observer, copied, tmp_path) == b"odd bytes"
    alice.files.delete(copied)
    assert names(observer, f"My Files/copies/{folder.split('/')[1]}", include_deleted=True) == {"ren %2F +.txt": True}
    alice.files.undelete(copied)
    assert fetch(observer, copied, tmp_path) == b"odd bytes"


def test_a_numeric_name_keeps_its_path(alice: ServicesPortal, tmp_path: Path) -> None:
    put(alice, "My Files/2024.01", b"numeric")
    (entry,) = alice.files.listdir("My Files")
    assert str(entry.path.relative) == "My Files/2024.01"  # the SDK guesses the *name* is a float; paths come from href
    assert fetch(alice, "My Files/2024.01", tmp_path) == b"numeric"
