"""The global administrator's view through the unmodified vendor SDK (``/admin``).

A global admin sees every end user's cloud folders as
``Users/<owner>/My Files/…`` and may list, download, upload and create
folders there.  Because its session is outside any tenant, the SDK polls
background tasks with ``GET /admin/api/servers/<srv>/bgTasks/<n>`` instead
of ``getTaskStatus``; the server log (``-vv``) shows which route served them.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cterasdk import GlobalAdmin, ServicesPortal
from cterasdk.exceptions.io.core import (
    ContextError,
    CreateDirectoryError,
    GetMetadataError,
    PrivilegeError,
    ROFSError,
)

from tests.support.portal_process import PortalProcess
from tests.support.sdk import admin_session, user_session

pytestmark = pytest.mark.filterwarnings("ignore:In v4, passing bytes will no longer create a file field")

ALICE = "Users/alice/My Files"


@pytest.fixture
def admin(portal: PortalProcess) -> Iterator[GlobalAdmin]:
    with admin_session(portal) as client:
        yield client


@pytest.fixture
def alice(portal: PortalProcess) -> Iterator[ServicesPortal]:
    with user_session(portal, "alice") as client:
        yield client


def fetch(client: ServicesPortal | GlobalAdmin, path: str, tmp_path: Path) -> bytes:
    target = tmp_path / f"dl-{len(list(tmp_path.iterdir()))}"
    target.mkdir()
    return Path(client.files.download(path, destination=str(target) + "/")).read_bytes()


def test_admin_root_and_user_folders(admin: GlobalAdmin) -> None:
    assert [entry.name for entry in admin.files.listdir("/")] == ["Users"]
    assert sorted(entry.name for entry in admin.files.listdir("Users")) == ["alice", "bob"]
    (personal,) = admin.files.listdir("Users/alice")
    assert personal.name == "My Files" and personal.is_dir
    assert personal.volume.owner.name == "alice"
    assert str(personal.path.relative) == ALICE


def test_admin_sees_what_the_user_uploaded(admin: GlobalAdmin, alice: ServicesPortal, tmp_path: Path) -> None:
    alice.files.makedirs("My Files/Reports/2025")
    alice.files.upload("My Files/Reports/2025/q1.txt", b"alice's q1")
    assert [entry.name for entry in admin.files.listdir(f"{ALICE}/Reports/2025")] == ["q1.txt"]
    info = admin.files.properties(f"{ALICE}/Reports/2025/q1.txt")
    assert info.size == len(b"alice's q1")
    assert info.id == alice.files.properties("My Files/Reports/2025/q1.txt").id, "one file, two namespaces"
    assert fetch(admin, f"{ALICE}/Reports/2025/q1.txt", tmp_path) == b"alice's q1"
    assert [str(entry.path.relative) for entry in admin.files.walk(f"{ALICE}/Reports")] == [
        f"{ALICE}/Reports/2025",
        f"{ALICE}/Reports/2025/q1.txt",
    ]


def test_admin_writes_land_in_the_users_folder(admin: GlobalAdmin, alice: ServicesPortal, tmp_path: Path) -> None:
    assert admin.files.mkdir(f"{ALICE}/From admin") == f"{ALICE}/From admin"
    admin.files.makedirs(f"{ALICE}/From admin/deep/er")
    assert admin.files.upload(f"{ALICE}/From admin/memo.txt", b"memo from root") == f"{ALICE}/From admin/memo.txt"
    assert sorted(entry.name for entry in alice.files.listdir("My Files/From admin")) == ["deep", "memo.txt"]
    assert alice.files.exists("My Files/From admin/deep/er")
    assert fetch(alice, "My Files/From admin/memo.txt", tmp_path) == b"memo from root"
    assert list(admin.files.listdir("Users/bob/My Files")) == [], "bob's folder is untouched"


def test_admin_tasks_are_polled_through_the_admin_route(
    admin: GlobalAdmin, alice: ServicesPortal, tmp_path: Path
) -> None:
    # An empty currentPortal is what makes the SDK poll with GET instead of getTaskStatus.
    assert not admin.session().in_tenant_context()
    assert alice.session().in_tenant_context()
    alice.files.mkdir("My Files/a")
    alice.files.upload("My Files/a/f.txt", b"payload")
    admin.files.copy(f"{ALICE}/a/f.txt", destination=f"{ALICE}")
    admin.files.rename(f"{ALICE}/f.txt", "g.txt")
    admin.files.move(f"{ALICE}/g.txt", destination=f"{ALICE}/a")
    assert sorted(entry.name for entry in alice.files.listdir("My Files/a")) == ["f.txt", "g.txt"]
    assert fetch(alice, "My Files/a/g.txt", tmp_path) == b"payload"

    pending = admin.files.delete(f"{ALICE}/a/f.txt", wait=False)
    assert re.fullmatch(r"servers/[^/]+/bgTasks/[1-9][0-9]*", pending.ref)
    finished = pending.wait()
    assert finished.completed and finished.error_type is None
    polled = admin.api.get(pending.ref)  # GET /admin/api/servers/<srv>/bgTasks/<n>, by hand
    assert polled._classname == "FileManagerBgTask"
    assert (polled.status, polled.id) == ("completed", int(pending.ref.rsplit("/", 1)[1]))
    assert [entry.name for entry in alice.files.listdir("My Files/a")] == ["g.txt"]

    admin.files.undelete(f"{ALICE}/a/f.txt")
    assert sorted(entry.name for entry in alice.files.listdir("My Files/a")) == ["f.txt", "g.txt"]


def test_admin_zip_of_a_users_folder(admin: GlobalAdmin, alice: ServicesPortal, tmp_path: Path) -> None:
    alice.files.makedirs("My Files/Album/2024")
    alice.files.upload("My Files/Album/2024/a.bin", b"\x01" * 1000)
    alice.files.upload("My Files/Album/b.txt", b"bee")
    saved = Path(admin.files.download(f"{ALICE}/Album", destination=str(tmp_path) + "/"))
    with zipfile.ZipFile(saved) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
    assert files == {"2024/a.bin": b"\x01" * 1000, "b.txt": b"bee"}


def test_admin_containers_are_read_only(admin: GlobalAdmin) -> None:
    with pytest.raises(ROFSError):
        admin.files.upload("Users/alice/stray.txt", b"no")
    with pytest.raises(ContextError):
        admin.files.upload("stray.txt", b"no")  # the SDK refuses paths outside Users/ itself
    with pytest.raises(CreateDirectoryError) as refused:
        admin.files.mkdir("Users/alice/Another drive")
    assert isinstance(refused.value.__cause__, PrivilegeError)
    assert [entry.name for entry in admin.files.listdir("Users/alice")] == ["My Files"]
    with pytest.raises(GetMetadataError):
        list(admin.files.listdir("Elsewhere"))  # the admin namespace holds only Users


def test_admin_sees_sample_history(sample_portal: PortalProcess, tmp_path: Path) -> None:
    with admin_session(sample_portal) as admin:
        assert len(list(admin.files.listdir(f"{ALICE}/Many files"))) == 3000
        versions = admin.files.versions(f"{ALICE}/Documents/Report.txt")
        assert [version.current for version in versions] == [False, False, True]
        assert str(versions[0].path.relative).startswith(f"{ALICE}/")
        assert fetch(admin, versions[0].path, tmp_path).startswith(b"Quarterly report, first draft\n")
        deleted = [e.name for e in admin.files.listdir(f"{ALICE}/Documents", include_deleted=True) if e.deleted]
        assert deleted == ["Old notes.txt"]
