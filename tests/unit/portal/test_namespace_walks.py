"""``Namespace.resolve(walked=)``: the paths of one request share the walk to their folders.

A ZIP of a hundred files of one folder (portal/http/archive.py) resolves
that folder once, not a hundred times.  What is remembered is only where
folders are: each path's last name is still looked up, and still checked.
"""

from __future__ import annotations

import pytest

from portal.http.namespace import Namespace, Node
from portal.http.sessions import SERVICES
from portal.store import NotFound, Store
from tests.unit.portal.conftest import People, put


def alices_view(store: Store) -> Namespace:
    user = store.user("alice")
    assert user is not None
    return Namespace(store, user, SERVICES)


def counting_lookups(namespace: Namespace, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names ``namespace`` looks up from now on, in order."""
    looked: list[str] = []
    lookup = namespace.child

    def child(parent: Node, name: str, **options: bool) -> Node | None:
        looked.append(name)
        return lookup(parent, name, **options)

    monkeypatch.setattr(namespace, "child", child)
    return looked


def test_the_files_of_one_folder_walk_to_it_once(store: Store, people: People,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    deep = store.make_folder(store.make_folder(people.root("alice"), "Docs"), "Deep")
    files = [put(store, deep, f"{n}.txt", b"x") for n in range(4)]
    namespace = alices_view(store)
    looked = counting_lookups(namespace, monkeypatch)
    walked: dict[tuple[str, ...], Node] = {}

    found = [namespace.resolve(["My Files", "Docs", "Deep", f"{n}.txt"], walked=walked) for n in range(4)]

    assert [node.item.id for node in found if node.item is not None] == [file.id for file in files]
    assert looked == ["My Files", "Docs", "Deep", "0.txt", "1.txt", "2.txt", "3.txt"]
    alone = [namespace.resolve(["My Files", "Docs", "Deep", f"{n}.txt"]) for n in range(4)]
    assert found == alone  # the same nodes as each path walked on its own


def test_a_folder_not_walked_yet_is_walked_from_the_root(store: Store, people: People,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    docs = store.make_folder(people.root("alice"), "Docs")
    put(store, store.make_folder(docs, "A"), "a.txt", b"a")
    put(store, store.make_folder(docs, "B"), "b.txt", b"b")
    namespace = alices_view(store)
    looked = counting_lookups(namespace, monkeypatch)
    walked: dict[tuple[str, ...], Node] = {}
    namespace.resolve(["My Files", "Docs", "A", "a.txt"], walked=walked)
    del looked[:]
    # Looked up by the path's own folder only: one not walked yet is walked from the root.
    found = namespace.resolve(["My Files", "Docs", "B", "b.txt"], walked=walked)
    assert found.path == ("My Files", "Docs", "B", "b.txt")
    assert looked == ["My Files", "Docs", "B", "b.txt"]
    del looked[:]
    assert namespace.resolve(["My Files", "Docs", "B"], walked=walked).path == ("My Files", "Docs", "B")
    assert looked == ["B"]  # its parent was walked


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "nul\0"])
def test_a_walked_folder_still_refuses_a_bad_last_name(store: Store, people: People, name: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    put(store, store.make_folder(people.root("alice"), "Docs"), "real.txt", b"r")
    namespace = alices_view(store)
    walked: dict[tuple[str, ...], Node] = {}
    namespace.resolve(["My Files", "Docs", "real.txt"], walked=walked)
    looked = counting_lookups(namespace, monkeypatch)
    with pytest.raises(NotFound, match="path component"):
        namespace.resolve(["My Files", "Docs", name], walked=walked)
    assert looked == []  # refused before any lookup


def test_a_walked_folder_still_looks_the_last_name_up(store: Store, people: People,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    docs = store.make_folder(people.root("alice"), "Docs")
    put(store, docs, "real.txt", b"r")
    namespace = alices_view(store)
    walked: dict[tuple[str, ...], Node] = {}
    namespace.resolve(["My Files", "Docs", "real.txt"], walked=walked)
    looked = counting_lookups(namespace, monkeypatch)
    with pytest.raises(NotFound):
        namespace.resolve(["My Files", "Docs", "missing.txt"], walked=walked)
    put(store, docs, "later.txt", b"l")  # added after the walk: found, not a stale answer
    assert namespace.resolve(["My Files", "Docs", "later.txt"], walked=walked).path == ("My Files", "Docs", "later.txt")
    assert looked == ["missing.txt", "later.txt"]
