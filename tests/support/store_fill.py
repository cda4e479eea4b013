"""Filling a portal's store directly: for unit tests of the store, and for portals a test
builds before it starts them (thousands of files in a second, where uploads take minutes)."""

from __future__ import annotations

from portal.store import Item, Store
from tests.support.portal_process import USERS


def my_files(store: Store, user: str) -> Item:
    """The top folder of ``user``'s ``My Files``; the user is made first (with the password the
    test portals give it) if the store has none by that name."""
    owner = store.user(user) or store.set_user(user, USERS[user])
    return store.item(store.cloud_folders(owner.id)[0].root_item_id)


def put(store: Store, parent: Item, name: str, data: bytes, *, durable: bool = True) -> Item:
    """A new file or a new version, with ``data`` as its content (``durable=False``: no fsync,
    for stores built in bulk and synced once)."""
    return store.put_file(parent, name, store.blobs.write_small(data, durable=durable), len(data))
