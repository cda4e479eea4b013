"""A real :class:`portal.store.Store` on a temporary directory, no HTTP.

Store methods are synchronous and atomic, so tests call them directly and
read content back through :meth:`Store.content_path`, exactly as the HTTP
layer does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from portal.store import Item, Store
from tests.support.store_fill import my_files
from tests.support.store_fill import put as put  # the store tests' own, kept importable from here


@dataclass
class People:
    store: Store

    def root(self, user: str) -> Item:
        """The top folder of ``user``'s ``My Files``."""
        return my_files(self.store, user)


def read(store: Store, item: Item) -> bytes:
    return store.content_path(item).read_bytes()


def names(store: Store, folder: Item, *, include_deleted: bool = False) -> list[str]:
    return [child.name for child in store.iter_children(folder, include_deleted=include_deleted)]


def open_store(data_dir: Path, *, case_sensitive: bool = False, quota: int | None = None) -> Store:
    store = Store(data_dir, case_sensitive=case_sensitive)
    for user in ("alice", "bob"):
        store.set_user(user, f"{user}-secret", quota_bytes=quota)
    return store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "data")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def people(store: Store) -> People:
    return People(store)
