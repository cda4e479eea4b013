"""Copy, move and rename onto a name that is taken, with the SDK's conflict resolver.

Without a resolver the task fails with ``errorType=Conflict`` and the SDK
raises ``FileConflictError`` as the cause.  With a resolver it resubmits the
task with the server's cursor plus a handler: ``Override`` replaces the
occupant, ``Rename`` keeps both, ``Skip`` leaves the occupant and the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cterasdk import ServicesPortal
from cterasdk.core.types import ConflictResolver
from cterasdk.exceptions.io.core import CopyError, FileConflictError, MoveError, RecoverError, RenameError

from tests.support.portal_process import PortalProcess
from tests.support.sdk import user_session

pytestmark = pytest.mark.filterwarnings("ignore:In v4, passing bytes will no longer create a file field")


@pytest.fixture
def alice(portal: PortalProcess) -> Iterator[ServicesPortal]:
    with user_session(portal, "alice") as client:
        client.files.mkdir("My Files/dest")
        client.files.upload("My Files/report.txt", b"incoming")
        client.files.upload("My Files/dest/report.txt", b"occupant")
        yield client


@pytest.fixture
def observer(portal: PortalProcess) -> Iterator[ServicesPortal]:
    with user_session(portal, "alice") as client:
        yield client


def listing(client: ServicesPortal, path: str) -> list[str]:
    return sorted(entry.name for entry in client.files.listdir(path))


def fetch(client: ServicesPortal, path: str, tmp_path: Path) -> bytes:
    target = tmp_path / f"dl-{len(list(tmp_path.iterdir()))}"
    target.mkdir()
    return Path(client.files.download(path, destination=str(target) + "/")).read_bytes()


@pytest.mark.parametrize(("operation", "error"), [("copy", CopyError), ("move", MoveError)])
def test_conflict_without_resolver_changes_nothing(
    alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path, operation: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as conflict:
        getattr(alice.files, operation)("My Files/report.txt", destination="My Files/dest")
    assert isinstance(conflict.value.__cause__, FileConflictError)
    assert str(conflict.value.__cause__.path) == "My Files/dest/report.txt"
    assert listing(observer, "My Files") == ["dest", "report.txt"]
    assert fetch(observer, "My Files/dest/report.txt", tmp_path) == b"occupant"


def test_copy_with_override_replaces_the_occupant(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.copy("My Files/report.txt", destination="My Files/dest", resolver=ConflictResolver.overwrite())
    assert listing(observer, "My Files/dest") == ["report.txt"]
    assert fetch(observer, "My Files/dest/report.txt", tmp_path) == b"incoming"
    assert fetch(observer, "My Files/report.txt", tmp_path) == b"incoming", "a copy leaves the source"
    deleted = [entry for entry in observer.files.listdir("My Files/dest", include_deleted=True) if entry.deleted]
    assert [entry.name for entry in deleted] == ["report.txt"], "the replaced file went to the recycle bin"


def test_move_with_override_replaces_the_occupant(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.move("My Files/report.txt", destination="My Files/dest", resolver=ConflictResolver.overwrite())
    assert listing(observer, "My Files") == ["dest"]
    assert fetch(observer, "My Files/dest/report.txt", tmp_path) == b"incoming"


def test_copy_with_rename_keeps_both(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.copy("My Files/report.txt", destination="My Files/dest", resolver=ConflictResolver.rename())
    names = listing(observer, "My Files/dest")
    assert len(names) == 2 and "report.txt" in names
    (renamed,) = [name for name in names if name != "report.txt"]
    assert renamed.startswith("report") and renamed.endswith(".txt")
    assert fetch(observer, "My Files/dest/report.txt", tmp_path) == b"occupant"
    assert fetch(observer, f"My Files/dest/{renamed}", tmp_path) == b"incoming"


def test_move_with_skip_leaves_everything(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.move("My Files/report.txt", destination="My Files/dest", resolver=ConflictResolver.ignore())
    assert listing(observer, "My Files") == ["dest", "report.txt"]
    assert fetch(observer, "My Files/dest/report.txt", tmp_path) == b"occupant"
    assert fetch(observer, "My Files/report.txt", tmp_path) == b"incoming"


def test_skip_applies_only_to_the_conflicting_item(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.upload("My Files/other.txt", b"other")
    alice.files.move(
        "My Files/report.txt", "My Files/other.txt", destination="My Files/dest", resolver=ConflictResolver.ignore()
    )
    assert listing(observer, "My Files") == ["dest", "report.txt"]
    assert listing(observer, "My Files/dest") == ["other.txt", "report.txt"]
    assert fetch(observer, "My Files/dest/other.txt", tmp_path) == b"other"


def test_override_for_one_conflict_only(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.upload("My Files/second.txt", b"second incoming")
    alice.files.upload("My Files/dest/second.txt", b"second occupant")
    alice.files.copy(
        "My Files/report.txt",
        "My Files/second.txt",
        destination="My Files/dest",
        resolver=ConflictResolver.overwrite(apply_all=False),
    )
    assert fetch(observer, "My Files/dest/report.txt", tmp_path) == b"incoming"
    assert fetch(observer, "My Files/dest/second.txt", tmp_path) == b"second incoming"


def test_rename_onto_a_taken_name(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.upload("My Files/taken.txt", b"taken")
    with pytest.raises(RenameError) as conflict:
        alice.files.rename("My Files/report.txt", "taken.txt")
    assert isinstance(conflict.value.__cause__, FileConflictError)
    assert fetch(observer, "My Files/taken.txt", tmp_path) == b"taken"
    alice.files.rename("My Files/report.txt", "taken.txt", resolver=ConflictResolver.overwrite())
    assert listing(observer, "My Files") == ["dest", "taken.txt"]
    assert fetch(observer, "My Files/taken.txt", tmp_path) == b"incoming"


def test_rename_changing_only_case(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.rename("My Files/report.txt", "Report.TXT")
    assert listing(observer, "My Files") == ["Report.TXT", "dest"]
    assert fetch(observer, "My Files/Report.TXT", tmp_path) == b"incoming"


def test_copy_onto_itself_is_a_conflict(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.mkdir("My Files/folder")
    for source in ("My Files/report.txt", "My Files/folder"):
        with pytest.raises(CopyError) as conflict:
            alice.files.copy(source, destination="My Files")
        assert isinstance(conflict.value.__cause__, FileConflictError)
    alice.files.copy("My Files/report.txt", destination="My Files", resolver=ConflictResolver.overwrite())
    assert listing(observer, "My Files") == ["dest", "folder", "report.txt"]
    assert fetch(observer, "My Files/report.txt", tmp_path) == b"incoming"
    alice.files.copy("My Files/report.txt", destination="My Files", resolver=ConflictResolver.rename())
    names = listing(observer, "My Files")
    assert len(names) == 4
    (renamed,) = set(names) - {"dest", "folder", "report.txt"}
    assert fetch(observer, f"My Files/{renamed}", tmp_path) == b"incoming"


def test_undelete_onto_a_taken_name(alice: ServicesPortal, observer: ServicesPortal, tmp_path: Path) -> None:
    alice.files.delete("My Files/report.txt")
    alice.files.upload("My Files/report.txt", b"newcomer")
    with pytest.raises(RecoverError):
        alice.files.undelete("My Files/report.txt")
    assert fetch(observer, "My Files/report.txt", tmp_path) == b"newcomer"
