"""Where the portal says no, seen through the unmodified vendor SDK: read-only
places (the root, snapshots, cloud folders themselves) and the user quota.

The SDK refuses some uploads on its own, from the ``scope`` and
``permission`` the server reports; those tests check the server reports them
right.  Others go past the SDK's checks with its lower-level calls, to check
the server refuses by itself and leaves nothing behind.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from cterasdk import ServicesPortal
from cterasdk.exceptions.io.core import (
    CopyError,
    CreateDirectoryError,
    DeleteError,
    MoveError,
    PrivilegeError,
    QuotaError,
    RenameError,
    ROFSError,
    UploadError,
)

from tests.support.portal_process import PortalProcess, running_portal
from tests.support.sdk import portal_hook, user_session

pytestmark = pytest.mark.filterwarnings("ignore:In v4, passing bytes will no longer create a file field")

MiB = 1 << 20


@pytest.fixture
def alice(portal: PortalProcess) -> Iterator[ServicesPortal]:
    with user_session(portal, "alice") as client:
        yield client


@pytest.fixture
def quota_portal(tmp_path: Path) -> Iterator[PortalProcess]:
    """A fresh portal whose end users may store 1 MiB each."""
    with running_portal(tmp_path / "data", "--quota", "1M") as server:
        yield server


def fetch(client: ServicesPortal, path: str, tmp_path: Path) -> bytes:
    target = tmp_path / f"dl-{len(list(tmp_path.iterdir()))}"
    target.mkdir()
    return Path(client.files.download(path, destination=str(target) + "/")).read_bytes()


def raw_upload(client: ServicesPortal, portal: PortalProcess, path: str, data: bytes) -> tuple[int, str]:
    """Upload through the SDK's transport only, skipping its client-side checks: ``(rc, msg)``."""
    volume = client.files.properties("My Files").volume.id
    fullpath = f"{portal.url}/ServicesPortal/webdav/{urllib.parse.quote(path)}"
    name = path.rsplit("/", 1)[-1]
    reply = client.io.upload(
        str(volume), dict(name=name, Filename=name, fullpath=fullpath, fileSize=str(len(data)), file=data)
    )
    return reply.rc, reply.msg


def snapshot_label(client: ServicesPortal, path: str) -> str:
    """The snapshot folder name of the oldest version of ``path``."""
    oldest = client.files.versions(path)[0]
    return str(oldest.path.relative).split("/.snapshots/", 1)[1].split("/", 1)[0]


# ---------------------------------------------------------------- read-only places


def test_the_root_is_read_only(alice: ServicesPortal) -> None:
    with pytest.raises(ROFSError):
        alice.files.upload("stray.txt", b"no")
    with pytest.raises(CreateDirectoryError) as refused:
        alice.files.mkdir("Another drive")
    assert isinstance(refused.value.__cause__, PrivilegeError)
    assert [entry.name for entry in alice.files.listdir("/")] == ["My Files"]


def test_the_cloud_folder_itself_cannot_be_deleted_or_moved(alice: ServicesPortal) -> None:
    alice.files.upload("My Files/kept.txt", b"kept")
    with pytest.raises(DeleteError) as refused:
        alice.files.delete("My Files")
    assert isinstance(refused.value.__cause__, PrivilegeError)
    with pytest.raises(RenameError):
        alice.files.rename("My Files", "Your Files")
    assert [entry.name for entry in alice.files.listdir("/")] == ["My Files"]
    assert alice.files.exists("My Files/kept.txt")


def test_snapshots_are_read_only_but_can_be_copied_from(
    portal: PortalProcess, alice: ServicesPortal, tmp_path: Path
) -> None:
    alice.files.upload("My Files/doc.txt", b"as it was")
    assert portal_hook(portal, "snapshot").startswith("took ")
    alice.files.upload("My Files/doc.txt", b"as it is now")
    label = snapshot_label(alice, "My Files/doc.txt")
    snapshot = f"My Files/.snapshots/{label}"
    assert [entry.name for entry in alice.files.listdir(snapshot)] == ["doc.txt"]

    with pytest.raises(PrivilegeError):
        alice.files.upload(f"{snapshot}/new.txt", b"no")
    assert raw_upload(alice, portal, f"{snapshot}/new.txt", b"no")[0] != 0, "the server refuses by itself"
    with pytest.raises(CreateDirectoryError) as refused:
        alice.files.mkdir(f"{snapshot}/new folder")
    assert isinstance(refused.value.__cause__, PrivilegeError)
    with pytest.raises(DeleteError) as refused_delete:
        alice.files.delete(f"{snapshot}/doc.txt")
    assert isinstance(refused_delete.value.__cause__, PrivilegeError)
    with pytest.raises(MoveError):
        alice.files.move("My Files/doc.txt", destination=snapshot)
    assert [entry.name for entry in alice.files.listdir(snapshot)] == ["doc.txt"]
    assert fetch(alice, f"{snapshot}/doc.txt", tmp_path) == b"as it was"

    alice.files.mkdir("My Files/restored")
    alice.files.copy(f"{snapshot}/doc.txt", destination="My Files/restored")
    assert fetch(alice, "My Files/restored/doc.txt", tmp_path) == b"as it was"
    assert fetch(alice, "My Files/doc.txt", tmp_path) == b"as it is now"


def test_a_refused_upload_leaves_nothing(portal: PortalProcess, alice: ServicesPortal) -> None:
    rc, msg = raw_upload(alice, portal, "My Files/missing folder/x.txt", b"orphan")
    assert rc != 0 and msg
    rc, _ = raw_upload(alice, portal, "My Files/bad|name.txt", b"bad")
    assert rc != 0
    assert list(alice.files.listdir("My Files")) == []


def test_one_user_cannot_reach_another_users_folder(portal: PortalProcess, alice: ServicesPortal) -> None:
    with user_session(portal, "bob") as bob:
        bob_volume = bob.files.properties("My Files").volume.id
        bob.files.upload("My Files/private.txt", b"bob only")
    name = "intruder.txt"
    reply = alice.io.upload(
        str(bob_volume),
        dict(name=name, Filename=name, fullpath=f"{portal.url}/ServicesPortal/webdav/My%20Files/{name}",
             fileSize="3", file=b"bad"),
    )
    assert reply.rc != 0, "alice's My Files is not bob's cloud folder"
    assert list(alice.files.listdir("My Files")) == []
    with user_session(portal, "bob") as bob:
        assert [entry.name for entry in bob.files.listdir("My Files")] == ["private.txt"]


# ---------------------------------------------------------------- quota


def test_upload_beyond_the_quota_raises_quota_error(quota_portal: PortalProcess, tmp_path: Path) -> None:
    with user_session(quota_portal, "alice") as alice:
        alice.files.upload("My Files/first.bin", b"1" * (600 << 10))
        with pytest.raises(UploadError) as refused:
            alice.files.upload("My Files/second.bin", b"2" * (600 << 10))
        assert isinstance(refused.value.__cause__, QuotaError)
        assert [entry.name for entry in alice.files.listdir("My Files")] == ["first.bin"]

        alice.files.upload("My Files/first.bin", b"3" * (700 << 10))  # a new version grows by 100 KiB only
        assert alice.files.properties("My Files/first.bin").size == 700 << 10

        alice.files.mkdir("My Files/sub")
        with pytest.raises(CopyError):
            alice.files.copy("My Files/first.bin", destination="My Files/sub")
        assert list(alice.files.listdir("My Files/sub")) == []

        alice.files.delete("My Files/first.bin")
        alice.files.upload("My Files/second.bin", b"2" * (900 << 10))
        assert fetch(alice, "My Files/second.bin", tmp_path) == b"2" * (900 << 10)


def test_quota_is_per_user(quota_portal: PortalProcess) -> None:
    with user_session(quota_portal, "alice") as alice, user_session(quota_portal, "bob") as bob:
        alice.files.upload("My Files/a.bin", b"a" * (900 << 10))
        bob.files.upload("My Files/b.bin", b"b" * (900 << 10))
        assert bob.files.properties("My Files/b.bin").size == 900 << 10
        with pytest.raises(UploadError) as refused:
            bob.files.upload("My Files/c.bin", b"c" * (200 << 10))
        assert isinstance(refused.value.__cause__, QuotaError)
