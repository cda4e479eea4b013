"""Quotas: live file content of a user's cloud folders never grows past the quota."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.store import QuotaExceeded, Store
from tests.unit.portal.conftest import People, names, open_store, put

QUOTA = 1000


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "limited", quota=QUOTA)
    try:
        yield store
    finally:
        store.close()


def _used(store: Store, user: str = "alice") -> int:
    owner = store.user(user)
    assert owner is not None
    return store.usage(owner.id)


def test_uploads_beyond_the_quota_are_refused(limited: Store) -> None:
    root = People(limited).root("alice")
    put(limited, root, "a.bin", b"a" * 600)
    with pytest.raises(QuotaExceeded, match="User is out of quota"):
        limited.check_upload(root, "b.bin", 401)
    with pytest.raises(QuotaExceeded):
        put(limited, root, "b.bin", b"b" * 401)
    put(limited, root, "b.bin", b"b" * 400)  # exactly full is fine
    assert _used(limited) == QUOTA
    assert names(limited, root) == ["a.bin", "b.bin"]
    # Another user's usage is separate.
    put(limited, People(limited).root("bob"), "bob.bin", b"x" * QUOTA)


def test_a_new_version_counts_only_its_growth(limited: Store) -> None:
    root = People(limited).root("alice")
    put(limited, root, "a.bin", b"a" * 900)
    put(limited, root, "a.bin", b"a" * 1000)  # +100: fits
    put(limited, root, "a.bin", b"a" * 10)  # shrinking always fits
    with pytest.raises(QuotaExceeded):
        put(limited, root, "a.bin", b"a" * 1001)
    assert _used(limited) == 10


def test_deleting_frees_quota_and_copies_count(limited: Store) -> None:
    root = People(limited).root("alice")
    folder = limited.make_folder(root, "F")
    big = put(limited, folder, "big.bin", b"b" * 700)
    with pytest.raises(QuotaExceeded):
        limited.copy(big, root, "copy.bin")  # shares the blob, but counts for the user
    with pytest.raises(QuotaExceeded):
        limited.copy(folder, root, "F copy")
    limited.delete(big)
    assert _used(limited) == 0
    put(limited, root, "other.bin", b"o" * 700)
    assert _used(limited) == 700


def test_restoring_from_the_recycle_bin_respects_the_quota(limited: Store) -> None:
    """Otherwise delete, upload, restore, repeat would grow a user without bound."""
    root = People(limited).root("alice")
    first = put(limited, root, "first.bin", b"1" * 800)
    limited.delete(first)
    put(limited, root, "second.bin", b"2" * 800)
    with pytest.raises(QuotaExceeded):
        limited.restore(limited.item(first.id))
    assert limited.item(first.id).is_deleted, "a refused restore changes nothing"
    assert _used(limited) == 800
    folder = limited.make_folder(root, "Folder")
    put(limited, folder, "inside.bin", b"i" * 100)
    limited.delete(folder)
    limited.restore(limited.item(folder.id))  # +100 fits
    assert _used(limited) == 900
    # Replacing a live file by its deleted namesake counts only the difference.
    limited.delete(limited.child(root, "second.bin"))  # type: ignore[arg-type]
    put(limited, root, "first.bin", b"n" * 100)
    restored = limited.restore(limited.deleted_child(root, "first.bin"), replace=True)  # type: ignore[arg-type]
    assert restored.id == first.id
    assert _used(limited) == 900


def test_unlimited_users_have_no_quota(store: Store, people: People) -> None:
    put(store, people.root("alice"), "big.bin", b"x" * 100_000)
    assert _used(store) == 100_000
