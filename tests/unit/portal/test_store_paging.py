"""Listing pages: keyset continuation must give exactly what ``OFFSET`` would.

:meth:`Store.children` remembers where each page ended and continues from that
key, but only while the folder is unchanged; otherwise it counts from the
start.  Either way a page at ``start`` must equal the folder's sorted children
``[start:start + limit]`` *at the moment of the call* — the contract
``fetchResources`` paging offers clients.
"""

from __future__ import annotations

import random

import pytest

from portal.store import Item, Store
from tests.unit.portal.conftest import People, put


def _offset_page(store: Store, folder: Item, start: int, limit: int, include_deleted: bool = False) -> list[int]:
    """The reference answer: the whole listing in one page from the start (no cursor), sliced."""
    everything, more = store.children(folder, start=0, limit=1 << 30, include_deleted=include_deleted)
    assert not more
    return [item.id for item in everything[start : start + limit]]


def _page(store: Store, folder: Item, start: int, limit: int, include_deleted: bool = False) -> tuple[list[int], bool]:
    items, more = store.children(folder, start=start, limit=limit, include_deleted=include_deleted)
    return [item.id for item in items], more


def _fill(store: Store, folder: Item, count: int, rng: random.Random) -> None:
    # Names in random order and case, some sharing prefixes, so name_key order matters.
    words = [f"{rng.choice(['a', 'B', 'c', 'Ab', 'ab-', 'Z'])}{index:04d}" for index in range(count)]
    rng.shuffle(words)
    for word in words:
        if rng.random() < 0.2:
            store.make_folder(folder, word)
        else:
            put(store, folder, word + ".txt", word.encode())


@pytest.mark.parametrize("limit", [1, 7, 50, 100, 333])
def test_sequential_pages_equal_offset_pages(store: Store, people: People, limit: int) -> None:
    folder = store.make_folder(people.root("alice"), "Many")
    _fill(store, folder, 400, random.Random(limit))
    start, seen = 0, []
    while True:
        page, more = _page(store, folder, start, limit)
        assert page == _offset_page(store, folder, start, limit)
        seen += page
        if not more:
            break
        start += len(page)
    assert seen == _offset_page(store, folder, 0, 10_000)
    assert len(seen) == len(set(seen)) == 400


def test_pages_requested_out_of_order_and_repeated(store: Store, people: People) -> None:
    folder = store.make_folder(people.root("alice"), "Many")
    _fill(store, folder, 250, random.Random(1))
    rng = random.Random(2)
    # Walk once so that cursors exist, then ask for arbitrary pages, some at cursor positions.
    start = 0
    while _page(store, folder, start, 25)[1]:
        start += 25
    for _ in range(200):
        start = rng.choice([rng.randrange(0, 260), 25 * rng.randrange(0, 11)])
        limit = rng.choice([1, 25, 40, 100])
        page, more = _page(store, folder, start, limit)
        assert page == _offset_page(store, folder, start, limit), (start, limit)
        assert more == (start + limit < 250)


def test_changes_between_pages_never_give_stale_continuations(store: Store, people: People) -> None:
    """After a change, the next page is the OFFSET page of the *new* state (the cursor is not reused)."""
    root = people.root("alice")
    folder = store.make_folder(root, "Changing")
    _fill(store, folder, 120, random.Random(3))
    rng = random.Random(4)
    changes = [
        lambda: put(store, folder, "0000-first.txt", b"new"),  # sorts before every page
        lambda: put(store, folder, f"m{rng.randrange(10**6)}.txt", b"x"),
        lambda: store.delete(store.iter_children(folder).__next__()),
        lambda: store.move(next(store.iter_children(folder)), folder, "zzzz-renamed-" + str(rng.randrange(10**6))),
        lambda: store.make_folder(folder, f"AAA{rng.randrange(10**6)}"),
        lambda: store.copy(next(store.iter_children(folder)), folder, f"copy-{rng.randrange(10**6)}"),
    ]
    for change in changes * 3:
        start = 0
        while True:
            page, more = _page(store, folder, start, 10)
            assert page == _offset_page(store, folder, start, 10)
            if not more:
                break
            start += len(page)
            if start == 40:
                change()
                after, _ = _page(store, folder, start, 10)
                assert after == _offset_page(store, folder, start, 10), "a stale cursor was used after a change"


def test_a_change_elsewhere_in_the_cloud_folder_is_harmless(store: Store, people: People) -> None:
    root = people.root("alice")
    folder = store.make_folder(root, "Listed")
    other = store.make_folder(root, "Other")
    _fill(store, folder, 60, random.Random(5))
    first, _ = _page(store, folder, 0, 20)
    put(store, other, "unrelated.txt", b"x")  # bumps the cloud folder's change counter
    second, _ = _page(store, folder, 20, 20)
    assert first + second == _offset_page(store, folder, 0, 40)


def test_include_deleted_pages(store: Store, people: People) -> None:
    folder = store.make_folder(people.root("alice"), "Bin")
    _fill(store, folder, 90, random.Random(6))
    for child in list(store.iter_children(folder))[::3]:
        store.delete(child)
    for include_deleted in (False, True):
        start, seen = 0, []
        while True:
            page, more = _page(store, folder, start, 13, include_deleted)
            assert page == _offset_page(store, folder, start, 13, include_deleted)
            seen += page
            if not more:
                break
            start += 13
        assert len(seen) == (90 if include_deleted else 60)


def test_snapshot_pages_are_stable_while_the_live_folder_changes(store: Store, people: People) -> None:
    root = people.root("alice")
    folder = store.make_folder(root, "Snap")
    _fill(store, folder, 75, random.Random(7))
    snapshot = store.take_snapshot(folder.cloud_folder_id, force=True)
    assert snapshot is not None
    old_folder = store.child(store.snapshot_root(snapshot), "Snap")
    assert old_folder is not None
    expected = _offset_page(store, old_folder, 0, 1000)
    start, seen = 0, []
    while True:
        page, more = _page(store, old_folder, start, 10)
        assert page == _offset_page(store, old_folder, start, 10)
        seen += page
        put(store, folder, f"during-{start}.txt", b"x")  # the live folder keeps changing
        if not more:
            break
        start += 10
    assert seen == expected


def test_absurd_positions_and_sizes(store: Store, people: People) -> None:
    folder = store.make_folder(people.root("alice"), "Few")
    _fill(store, folder, 5, random.Random(8))
    assert _page(store, folder, 10**30, 10) == ([], False)
    assert _page(store, folder, -5, 2) == (_offset_page(store, folder, 0, 2), True)
    assert _page(store, folder, 0, 10**30) == (_offset_page(store, folder, 0, 5), False)
    assert _page(store, folder, 0, 0)[0] == _offset_page(store, folder, 0, 1)


def test_a_rolled_back_change_leaves_no_stale_cursor(store: Store, people: People) -> None:
    """The change counter the cursors are keyed on is rolled back with the data;
    cursors remembered inside the failed transaction must not outlive it."""
    from portal.store.database import transaction

    folder = store.make_folder(people.root("alice"), "Rollback")
    _fill(store, folder, 30, random.Random(9))
    with pytest.raises(RuntimeError), transaction(store.db):
        put(store, folder, "0000-early.txt", b"x")  # shifts every later position by one
        _page(store, folder, 0, 10)
        _page(store, folder, 10, 10)
        raise RuntimeError("abort the transaction")
    put(store, folder, "zzzz-late.txt", b"x")  # the same change count again, different content
    for start in (20, 10, 30, 0):  # continuations first: a stale cursor would be used before being replaced
        assert _page(store, folder, start, 10)[0] == _offset_page(store, folder, start, 10), start
