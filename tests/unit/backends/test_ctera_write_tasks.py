"""Move, rename, copy, delete and the recycle bin against the real reference portal.

Each is a background task on the portal; the backend returns only once it
ended.  Outcomes are checked through a second route (plain httpx listing and
WebDAV ``GET``), identities through ``object_id`` (the portal's ``fileId``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import portal_http
from tests.support.portal_process import PortalProcess
from tests.unit.backends.conftest import connect, download, expire_sessions, in_thread
from tests.unit.backends.conftest import fresh_alice as alice  # noqa: F401 - on the test's own portal
from vfs.backends.base import Exists, NotADirectory, NotFound, PermissionDenied, UploadSource
from vfs.backends.ctera import CteraBackend


def source_of(data: bytes) -> UploadSource:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    return chunks



async def put(backend: CteraBackend, path: str, data: bytes) -> str:
    """Upload ``data`` to ``path`` (``/``-separated); its object id."""
    entry = await backend.upload(tuple(path.split("/")), source_of(data), len(data))
    return entry.object_id


async def served(portal: PortalProcess, path: str) -> bytes:
    return await in_thread(download, portal, path)


async def listed(portal: PortalProcess, folder: str) -> list[str]:
    def names() -> list[str]:
        with portal_http.logged_in(portal) as http:
            return sorted(portal_http.list_names(http, folder))

    return await in_thread(names)


# -------------------------------------------------------------- move, rename


async def test_rename_and_move_keep_the_identity(portal: PortalProcess, alice: CteraBackend) -> None:
    object_id = await put(alice, "My Files/draft.txt", b"words")
    await alice.make_folder(("My Files", "Archive"))

    await alice.move(("My Files", "draft.txt"), ("My Files", "final.txt"))
    renamed = await alice.stat(("My Files", "final.txt"))
    assert renamed.object_id == object_id
    with pytest.raises(NotFound):
        await alice.stat(("My Files", "draft.txt"))

    await alice.move(("My Files", "final.txt"), ("My Files", "Archive", "final (2025).txt"))
    moved = await alice.stat(("My Files", "Archive", "final (2025).txt"))
    assert moved.object_id == object_id
    assert await listed(portal, "My Files") == ["Archive"]
    assert await served(portal, "My Files/Archive/final (2025).txt") == b"words"
    stats = alice.statistics()
    assert stats.tasks == 2 and stats.count("move") == 2 and stats.task_polls >= 2


async def test_a_folder_moves_with_its_content(portal: PortalProcess, alice: CteraBackend) -> None:
    await alice.make_folder(("My Files", "Project"))
    inner = await put(alice, "My Files/Project/plan.txt", b"plan")
    await alice.make_folder(("My Files", "Done"))
    await alice.move(("My Files", "Project"), ("My Files", "Done", "Project"))
    assert (await alice.stat(("My Files", "Done", "Project", "plan.txt"))).object_id == inner
    # Uploads go to the folder's new place (the remembered uid of the old one is forgotten).
    await put(alice, "My Files/Done/Project/more.txt", b"more")
    assert await listed(portal, "My Files/Done/Project") == ["more.txt", "plan.txt"]
    with pytest.raises(NotFound):
        await put(alice, "My Files/Project/lost.txt", b"x")


async def test_moving_onto_a_taken_name(portal: PortalProcess, alice: CteraBackend) -> None:
    mover = await put(alice, "My Files/new.txt", b"new content")
    occupant = await put(alice, "My Files/old.txt", b"old content")

    with pytest.raises(Exists):
        await alice.move(("My Files", "new.txt"), ("My Files", "old.txt"))
    assert await served(portal, "My Files/old.txt") == b"old content"
    assert await listed(portal, "My Files") == ["new.txt", "old.txt"]

    await alice.move(("My Files", "new.txt"), ("My Files", "old.txt"), replace=True)
    replaced = await alice.stat(("My Files", "old.txt"))
    assert replaced.object_id == mover
    assert await served(portal, "My Files/old.txt") == b"new content"
    assert await listed(portal, "My Files") == ["old.txt"]
    bin_ = await alice.list_deleted(("My Files",))
    assert [(entry.name, entry.object_id, entry.deleted) for entry in bin_] == [("old.txt", occupant, True)]


async def test_moves_that_cannot_happen(portal: PortalProcess, alice: CteraBackend) -> None:
    await put(alice, "My Files/a.txt", b"a")
    with pytest.raises(NotFound):
        await alice.move(("My Files", "missing.txt"), ("My Files", "b.txt"))
    with pytest.raises(NotFound):
        await alice.move(("My Files", "a.txt"), ("My Files", "no folder", "a.txt"))
    with pytest.raises(PermissionDenied):
        await alice.move(("My Files", "a.txt"), ("a.txt",))  # the root takes no files
    with pytest.raises(PermissionDenied):
        await alice.delete(("My Files",))  # nor can a cloud folder go
    assert await listed(portal, "My Files") == ["a.txt"]


async def test_session_expiry_before_a_move_is_transparent(portal: PortalProcess, alice: CteraBackend) -> None:
    object_id = await put(alice, "My Files/a.txt", b"a")
    await in_thread(expire_sessions, portal)
    await alice.move(("My Files", "a.txt"), ("My Files", "b.txt"))
    assert (await alice.stat(("My Files", "b.txt"))).object_id == object_id
    assert alice.statistics().relogins == 1
    assert alice.statistics().tasks == 1  # the expired submission never ran, so it is sent once more only


# ---------------------------------------------------------------------- copy


async def test_copy_makes_a_new_item_with_the_same_bytes(portal: PortalProcess, alice: CteraBackend) -> None:
    original = await put(alice, "My Files/source.bin", bytes(range(256)) * 40)
    await alice.copy(("My Files", "source.bin"), ("My Files", "copy.bin"))
    copied = await alice.stat(("My Files", "copy.bin"))
    assert copied.object_id != original and copied.size == 10240
    assert (await alice.stat(("My Files", "source.bin"))).object_id == original
    assert await served(portal, "My Files/copy.bin") == bytes(range(256)) * 40

    await alice.make_folder(("My Files", "Tree"))
    await put(alice, "My Files/Tree/leaf.txt", b"leaf")
    await alice.copy(("My Files", "Tree"), ("My Files", "Tree copy"))
    assert await served(portal, "My Files/Tree copy/leaf.txt") == b"leaf"


async def test_copying_onto_a_taken_name(portal: PortalProcess, alice: CteraBackend) -> None:
    await put(alice, "My Files/a.txt", b"from a")
    occupant = await put(alice, "My Files/b.txt", b"from b")
    with pytest.raises(Exists):
        await alice.copy(("My Files", "a.txt"), ("My Files", "b.txt"))
    assert await served(portal, "My Files/b.txt") == b"from b"
    await alice.copy(("My Files", "a.txt"), ("My Files", "b.txt"), replace=True)
    assert await served(portal, "My Files/b.txt") == b"from a"
    assert (await alice.stat(("My Files", "b.txt"))).object_id != occupant
    assert [entry.object_id for entry in await alice.list_deleted(("My Files",))] == [occupant]
    with pytest.raises(NotFound):
        await alice.copy(("My Files", "missing"), ("My Files", "c.txt"))


# ------------------------------------------------------ delete, recycle bin


async def test_delete_and_undelete_a_file(portal: PortalProcess, alice: CteraBackend) -> None:
    object_id = await put(alice, "My Files/gone.txt", b"recover me")
    await alice.delete(("My Files", "gone.txt"))
    with pytest.raises(NotFound):
        await alice.stat(("My Files", "gone.txt"))
    assert await listed(portal, "My Files") == []

    deleted = await alice.list_deleted(("My Files",))
    assert [(entry.path, entry.object_id, entry.deleted) for entry in deleted] == [
        (("My Files", "gone.txt"), object_id, True)
    ]
    await alice.undelete(("My Files", "gone.txt"))
    back = await alice.stat(("My Files", "gone.txt"))
    assert back.object_id == object_id and not back.deleted
    assert await served(portal, "My Files/gone.txt") == b"recover me"
    assert await alice.list_deleted(("My Files",)) == []
    with pytest.raises(NotFound):
        await alice.undelete(("My Files", "gone.txt"))
    with pytest.raises(NotFound):
        await alice.delete(("My Files", "never was"))


async def test_a_folder_is_deleted_and_restored_with_its_content(portal: PortalProcess, alice: CteraBackend) -> None:
    await alice.make_folder(("My Files", "Photos"))
    await put(alice, "My Files/Photos/cat.jpg", b"cat")
    await alice.delete(("My Files", "Photos"))
    assert await listed(portal, "My Files") == []
    assert [entry.name for entry in await alice.list_deleted(("My Files",))] == ["Photos"]
    assert [entry.name for entry in await alice.list_deleted(("My Files", "Photos"))] == ["cat.jpg"]
    await alice.undelete(("My Files", "Photos"))
    assert await served(portal, "My Files/Photos/cat.jpg") == b"cat"


async def test_undelete_onto_a_taken_name_is_exists(portal: PortalProcess, alice: CteraBackend) -> None:
    await put(alice, "My Files/name.txt", b"first")
    await alice.delete(("My Files", "name.txt"))
    await put(alice, "My Files/name.txt", b"second")
    with pytest.raises(Exists):
        await alice.undelete(("My Files", "name.txt"))
    assert await served(portal, "My Files/name.txt") == b"second"


async def test_the_recycle_bin_lists_each_name_once(portal: PortalProcess, alice: CteraBackend) -> None:
    await put(alice, "My Files/twice.txt", b"one")
    await alice.delete(("My Files", "twice.txt"))
    await put(alice, "My Files/twice.txt", b"two")
    await alice.delete(("My Files", "twice.txt"))
    await put(alice, "My Files/alive.txt", b"alive")
    assert [entry.name for entry in await alice.list_deleted(("My Files",))] == ["twice.txt"]
    await alice.undelete(("My Files", "twice.txt"))
    assert await served(portal, "My Files/twice.txt") == b"two"  # the most recently deleted
    with pytest.raises(NotFound):
        await alice.list_deleted(("My Files", "no such folder"))
    with pytest.raises(NotADirectory):
        await alice.list_deleted(("My Files", "alive.txt"))
    assert alice.statistics().count("list_deleted") >= 1


# ------------------------------------------------------- the admin context


async def test_an_administrator_moves_and_deletes_in_a_users_folder(portal: PortalProcess) -> None:
    async with connect(portal) as alice:
        object_id = await put(alice, "My Files/report.txt", b"report")
    async with connect(portal, "root") as root:
        home = ("Users", "alice", "My Files")
        await root.move((*home, "report.txt"), (*home, "report-2025.txt"))
        assert (await root.stat((*home, "report-2025.txt"))).object_id == object_id
        await root.copy((*home, "report-2025.txt"), (*home, "copy.txt"))
        await root.delete((*home, "copy.txt"))
        assert [entry.name for entry in await root.list_deleted(home)] == ["copy.txt"]
        await root.undelete((*home, "copy.txt"))
        assert root.statistics().task_polls >= 4
    assert await listed(portal, "My Files") == ["copy.txt", "report-2025.txt"]
    # Global administrators poll with GET /admin/api/servers/<server>/bgTasks/<n>, as the SDK does.
    assert "GET /admin/api/servers/MainDB/bgTasks/" in portal.log()
