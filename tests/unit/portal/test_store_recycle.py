"""The recycle bin: a restore brings back exactly what was deleted with the item.

Deleting a folder marks its live subtree with one delete operation.  Restoring
an item brings back the items of *its* operation below it (not those deleted
earlier or later on their own) plus any deleted folders above it, so that it
has somewhere to live.
"""

from __future__ import annotations

import pytest

from portal.store import Exists, Item, NotFound, Store
from tests.unit.portal.conftest import People, names, put, read


def _live_paths(store: Store, folder: Item, prefix: str = "") -> set[str]:
    paths = set()
    for child in store.iter_children(folder):
        path = f"{prefix}{child.name}"
        paths.add(path + ("/" if child.is_folder else ""))
        if child.is_folder:
            paths |= _live_paths(store, child, path + "/")
    return paths


@pytest.fixture
def tree(store: Store, people: People) -> dict[str, Item]:
    """``A/{B/{c.txt, e.txt}, d.txt}`` and ``keep.txt`` in alice's root."""
    root = people.root("alice")
    a = store.make_folder(root, "A")
    b = store.make_folder(a, "B")
    return {
        "root": root,
        "A": a,
        "B": b,
        "c": put(store, b, "c.txt", b"c"),
        "e": put(store, b, "e.txt", b"e"),
        "d": put(store, a, "d.txt", b"d"),
        "keep": put(store, root, "keep.txt", b"k"),
    }


def test_deleting_a_folder_hides_its_subtree(store: Store, tree: dict[str, Item]) -> None:
    store.delete(tree["A"])
    assert _live_paths(store, tree["root"]) == {"keep.txt"}
    assert names(store, tree["root"], include_deleted=True) == ["A", "keep.txt"]
    for key in ("A", "B", "c", "e", "d"):
        assert store.item(tree[key].id).is_deleted
    assert store.child(tree["root"], "A") is None
    assert store.child(tree["root"], "A", include_deleted=True) is not None


def test_restoring_a_folder_brings_back_exactly_its_subtree(store: Store, tree: dict[str, Item]) -> None:
    store.delete(tree["d"])  # deleted on its own, before the folder
    store.delete(tree["A"])
    restored = store.restore(store.item(tree["A"].id))
    assert restored.id == tree["A"].id
    assert _live_paths(store, tree["root"]) == {"A/", "A/B/", "A/B/c.txt", "A/B/e.txt", "keep.txt"}
    assert store.item(tree["d"].id).is_deleted, "d.txt was deleted by another operation"
    assert read(store, store.item(tree["c"].id)) == b"c"
    # d.txt can still be restored by itself, later.
    store.restore(store.item(tree["d"].id))
    assert "A/d.txt" in _live_paths(store, tree["root"])


def test_restoring_an_item_brings_back_its_deleted_ancestors_only(store: Store, tree: dict[str, Item]) -> None:
    store.delete(tree["A"])
    store.restore(store.item(tree["c"].id))
    assert _live_paths(store, tree["root"]) == {"A/", "A/B/", "A/B/c.txt", "keep.txt"}
    for key in ("e", "d"):
        assert store.item(tree[key].id).is_deleted, f"{key} is not an ancestor of c.txt"
    # The rest of that deletion can still be restored afterwards.
    store.restore(store.item(tree["e"].id))
    store.restore(store.item(tree["d"].id))
    assert _live_paths(store, tree["root"]) == {"A/", "A/B/", "A/B/c.txt", "A/B/e.txt", "A/d.txt", "keep.txt"}


def test_a_later_deletion_inside_a_restored_folder_is_its_own(store: Store, tree: dict[str, Item]) -> None:
    store.delete(tree["A"])
    store.restore(store.item(tree["c"].id))  # A and B come back as ancestors
    store.delete(tree["B"])  # a new operation: B with c.txt
    store.restore(store.item(tree["B"].id))
    assert _live_paths(store, tree["root"]) == {"A/", "A/B/", "A/B/c.txt", "keep.txt"}
    assert store.item(tree["e"].id).is_deleted and store.item(tree["d"].id).is_deleted


def test_restore_conflicts(store: Store, tree: dict[str, Item]) -> None:
    root = tree["root"]
    store.delete(tree["keep"])
    newer = put(store, root, "keep.txt", b"newer")
    deleted = store.item(tree["keep"].id)
    with pytest.raises(Exists):
        store.restore(deleted)
    renamed = store.restore(deleted, new_name="keep (restored).txt")
    assert read(store, renamed) == b"k" and read(store, store.item(newer.id)) == b"newer"
    store.delete(renamed)
    replaced = store.restore(store.item(renamed.id), replace=True, new_name="keep.txt")
    assert replaced.id == tree["keep"].id and read(store, replaced) == b"k"
    assert store.item(newer.id).is_deleted, "the occupant goes to the recycle bin"
    assert names(store, root) == ["A", "keep.txt"]


def test_restoring_what_is_not_deleted_is_refused(store: Store, tree: dict[str, Item]) -> None:
    with pytest.raises(NotFound):
        store.restore(tree["c"])


def test_repeated_delete_and_restore_keeps_ids_and_content(store: Store, tree: dict[str, Item]) -> None:
    for _ in range(5):
        store.delete(store.item(tree["A"].id))
        assert _live_paths(store, tree["root"]) == {"keep.txt"}
        store.restore(store.item(tree["A"].id))
        assert _live_paths(store, tree["root"]) == {"A/", "A/B/", "A/B/c.txt", "A/B/e.txt", "A/d.txt", "keep.txt"}
    for key in ("c", "e", "d"):
        assert read(store, store.item(tree[key].id)) == key.encode()


def test_deleted_child_finds_the_latest_deletion(store: Store, people: People) -> None:
    root = people.root("alice")
    first = put(store, root, "same.txt", b"1")
    store.delete(first)
    second = put(store, root, "same.txt", b"2")
    store.delete(second)
    latest = store.deleted_child(root, "SAME.TXT")
    assert latest is not None and latest.id == second.id
    store.restore(latest)
    older = store.deleted_child(root, "same.txt")
    assert older is not None and older.id == first.id
    with pytest.raises(Exists):
        store.restore(older)
