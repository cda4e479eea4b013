"""Items and versions: ``fileId`` stability, name folding, copy and move."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.store import Exists, InvalidName, IsAFolder, NotAFolder, NotFound, PermissionDenied, Store
from tests.support.portal_process import blob_names
from tests.unit.portal.conftest import People, names, open_store, put, read


def test_new_versions_keep_the_file_id_and_change_the_version(store: Store, people: People) -> None:
    root = people.root("alice")
    first = put(store, root, "report.txt", b"v1")
    seen_versions = {first.version_id}
    for number in range(2, 6):
        again = put(store, root, "report.txt", f"v{number}".encode())
        assert again.id == first.id
        assert again.version_id not in seen_versions
        seen_versions.add(again.version_id)
        assert read(store, again) == f"v{number}".encode()
        assert again.size == 2
    # Older versions keep their own, unchanged content.
    assert store.blobs.path(store.version(first.version_id).blob).read_bytes() == b"v1"
    assert names(store, root) == ["report.txt"]


def test_names_are_case_insensitive_and_case_preserving(store: Store, people: People) -> None:
    root = people.root("alice")
    original = put(store, root, "Report.TXT", b"1")
    replaced = put(store, root, "report.txt", b"2")
    assert replaced.id == original.id
    assert replaced.name == "Report.TXT"  # the first spelling stays
    for spelling in ("REPORT.txt", "report.TXT", "rEpOrT.tXt"):
        found = store.child(root, spelling)
        assert found is not None and found.id == original.id
    store.make_folder(root, "Docs")
    with pytest.raises(Exists):
        store.make_folder(root, "DOCS")
    with pytest.raises(IsAFolder):
        put(store, root, "docs", b"x")
    assert names(store, root) == ["Docs", "Report.TXT"]


def test_unicode_normalisation_forms_are_one_name(store: Store, people: People) -> None:
    root = people.root("alice")
    composed = put(store, root, "r\u00e9sum\u00e9.txt", b"1")  # é as one code point
    decomposed = put(store, root, "re\u0301sume\u0301.txt", b"2")  # e + combining accent
    assert decomposed.id == composed.id
    assert store.child(root, "R\u00c9SUM\u00c9.TXT") is not None
    assert names(store, root) == ["r\u00e9sum\u00e9.txt"]


def test_case_sensitive_store_keeps_spellings_apart(tmp_path: Path) -> None:
    store = open_store(tmp_path / "cs", case_sensitive=True)
    try:
        root = People(store).root("alice")
        upper = put(store, root, "A.txt", b"upper")
        lower = put(store, root, "a.txt", b"lower")
        assert upper.id != lower.id
        assert read(store, store.child(root, "A.txt")) == b"upper"  # type: ignore[arg-type]
        assert store.child(root, "A.TXT") is None
        assert names(store, root) == ["A.txt", "a.txt"]
    finally:
        store.close()


def test_users_see_only_their_own_cloud_folders(store: Store, people: People) -> None:
    alice, bob = store.user("alice"), store.user("bob")
    assert alice is not None and bob is not None
    alice_folders = store.cloud_folders(alice.id)
    bob_folders = store.cloud_folders(bob.id)
    assert [f.name for f in alice_folders] == ["My Files"] == [f.name for f in bob_folders]
    assert alice_folders[0].id != bob_folders[0].id
    put(store, people.root("alice"), "mine.txt", b"a")
    assert names(store, people.root("bob")) == []


def test_copy_makes_new_items_that_share_blobs(store: Store, people: People) -> None:
    root = people.root("alice")
    source = store.make_folder(root, "Project")
    nested = store.make_folder(source, "Nested")
    one = put(store, source, "one.bin", b"1" * 1000)
    two = put(store, nested, "two.bin", b"2" * 2000)
    copied = store.copy(source, root, "Project copy")
    assert copied.id != source.id and copied.is_folder
    copied_one = store.child(copied, "one.bin")
    copied_nested = store.child(copied, "Nested")
    assert copied_one is not None and copied_nested is not None
    copied_two = store.child(copied_nested, "two.bin")
    assert copied_two is not None
    for original, copy in ((one, copied_one), (two, copied_two)):
        assert copy.id != original.id
        assert store.content_path(copy) == store.content_path(original)  # the same blob file
        assert copy.size == original.size
    blobs_before = blob_names(store.data_dir)
    single = store.copy(one, nested, "one again.bin")
    assert store.content_path(single) == store.content_path(one)
    assert blob_names(store.data_dir) == blobs_before, "copies add no blobs"
    # A new version of the copy leaves the original alone.
    put(store, copied, "one.bin", b"changed")
    assert read(store, store.item(one.id)) == b"1" * 1000


def test_move_keeps_identity_and_content(store: Store, people: People) -> None:
    root = people.root("alice")
    folder = store.make_folder(root, "A")
    target = store.make_folder(root, "B")
    item = put(store, folder, "x.txt", b"content")
    moved = store.move(item, target, "y.txt")
    assert moved.id == item.id and moved.version_id == item.version_id
    assert moved.parent_id == target.id and moved.name == "y.txt"
    assert read(store, moved) == b"content"
    assert names(store, folder) == [] and names(store, target) == ["y.txt"]
    # A rename that only changes case is allowed (it is the same item).
    assert store.move(moved, target, "Y.TXT").name == "Y.TXT"


def test_move_into_its_own_subtree_is_refused(store: Store, people: People) -> None:
    root = people.root("alice")
    top = store.make_folder(root, "Top")
    middle = store.make_folder(top, "Middle")
    bottom = store.make_folder(middle, "Bottom")
    for destination in (top, middle, bottom):
        with pytest.raises(InvalidName):
            store.move(top, destination, "Top")
        with pytest.raises(InvalidName):
            store.copy(top, destination, "Top copy")
    with pytest.raises(InvalidName):
        store.move(middle, bottom, "Middle")
    assert store.item(top.id).parent_id == root.id
    assert names(store, root) == ["Top"]
    assert names(store, bottom) == []


def test_move_and_copy_refuse_conflicts_unless_replacing(store: Store, people: People) -> None:
    root = people.root("alice")
    a = put(store, root, "a.txt", b"a")
    b = put(store, root, "b.txt", b"b")
    with pytest.raises(Exists):
        store.move(a, root, "B.TXT")
    with pytest.raises(Exists):
        store.copy(a, root, "b.txt")
    replaced = store.move(a, root, "b.txt", replace=True)
    assert replaced.id == a.id and read(store, replaced) == b"a"
    assert names(store, root) == ["b.txt"]
    # The occupant went to the recycle bin, not away.
    deleted = store.deleted_child(root, "b.txt")
    assert deleted is not None and deleted.id == b.id and read(store, deleted) == b"b"


def test_cloud_folders_and_missing_parents(store: Store, people: People) -> None:
    root = people.root("alice")
    with pytest.raises(PermissionDenied):
        store.delete(root)
    with pytest.raises(PermissionDenied):
        store.move(root, store.make_folder(root, "x"), "My Files")
    file = put(store, root, "f.txt", b"f")
    with pytest.raises(NotAFolder):
        store.make_folder(file, "inside a file")
    with pytest.raises(NotAFolder):
        store.children(file)
    store.delete(file)
    with pytest.raises(NotFound):
        store.move(store.item(file.id), root, "g.txt")
    with pytest.raises(NotFound):
        store.copy(store.item(file.id), root, "g.txt")


def test_content_paths_answer_many_files_in_one_go_in_their_order(store: Store, people: People) -> None:
    """A ZIP's run of small files asks for its blobs together; the answer must keep the run's order,
    repeat a file asked twice, and span more files than one query takes."""
    root = people.root("alice")
    files = [put(store, root, f"f{index:04d}.txt", f"content {index}".encode()) for index in range(1003)]
    asked = [*reversed(files), files[7]]
    paths = store.content_paths(asked)
    assert paths == [store.content_path(item) for item in asked]
    assert [path.read_bytes() for path in paths[-3:]] == [b"content 1", b"content 0", b"content 7"]
    assert store.content_paths([]) == []
    with pytest.raises(IsAFolder):
        store.content_paths([files[0], store.make_folder(root, "folder")])
