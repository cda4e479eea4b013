"""The portal's side of the story, for tests that change things through a mount.

A write test must check what *the portal* holds, not what the mount says:
:class:`PortalView` is a second client, independent of portalfs, speaking
the wire protocol with httpx (``tests.support.portal_http``) and, for
version history, the unmodified cterasdk.  Paths are relative to the user's
``My Files`` unless they start with ``/``.

:meth:`PortalView.wait_for` polls until a condition holds: uploads are
asynchronous by design (they run a short delay after ``close()``), so a test
waits for the portal to reach the expected state, with a deadline.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from tests.support import portal_http
from tests.support.portal_process import PortalProcess
from tests.support.sdk import user_session
from tests.support.waiting import wait_for
from wire import ctera_xml
from wire.ctera_xml import obj

T = TypeVar("T")
MY_FILES = "My Files"


@dataclass(frozen=True)
class Item:
    name: str
    file_id: str | None
    size: int
    is_dir: bool


class PortalView:
    def __init__(self, portal: PortalProcess, http: httpx.Client, user: str) -> None:
        self.portal = portal
        self.http = http
        self.user = user

    @staticmethod
    def full(path: str) -> str:
        return path.lstrip("/") if path.startswith("/") else f"{MY_FILES}/{path}".rstrip("/")

    def stat(self, path: str) -> Item | None:
        info = portal_http.stat(self.http, self.full(path))
        return None if info is None else _item(info)

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def file_id(self, path: str) -> str:
        item = self.stat(path)
        assert item is not None, f"{path} is not on the portal"
        assert item.file_id, f"{path} has no fileId"
        return item.file_id

    def names(self, folder: str = "") -> set[str]:
        return set(portal_http.list_names(self.http, self.full(folder)))

    def read(self, path: str) -> bytes:
        reply = self.http.get(portal_http.webdav_url(self.full(path)))
        reply.raise_for_status()
        return reply.content

    def deleted_names(self, folder: str = "") -> set[str]:
        """Names in the folder's recycle bin (``include_deleted`` listing)."""
        param = obj("FetchResourcesParam", root=portal_http.href(self.full(folder)), depth="1", start="0",
                    limit="1000", includeDeleted="true")
        answer = ctera_xml.as_obj(portal_http.call(self.http, "fetchResources", param))
        assert answer is not None
        return {ctera_xml.as_str(entry.get("name")) or "" for entry in ctera_xml.iter_objs(answer.get("items"))
                if ctera_xml.as_bool(entry.get("isDeleted"))}

    def snapshot_versions(self, path: str) -> int:
        """The versions cterasdk lists for the file (one per snapshot holding it, and the current one)."""
        with user_session(self.portal, self.user) as sdk:
            return sum(1 for version in sdk.files.versions(self.full(path)))

    def uploads_of(self, path: str) -> int:
        """How many versions (uploads) the portal stores for the file's identity.

        No protocol call counts every upload (the SDK's versions are per
        snapshot), so this reads the reference portal's own database,
        read-only: a white-box check that a save made exactly one version.
        """
        file_id = int(self.file_id(path))
        database = sqlite3.connect(f"file:{self.portal.data_dir / 'portal.sqlite3'}?mode=ro", uri=True)
        try:
            (count,) = database.execute("SELECT count(*) FROM versions WHERE item_id = ?", (file_id,)).fetchone()
        finally:
            database.close()
        return int(count)

    def tree(self, folder: str = "") -> dict[str, bytes | None]:
        """Every item below ``folder``: relative path → bytes (None for folders)."""
        found: dict[str, bytes | None] = {}
        for name in sorted(self.names(folder)):
            relative = f"{folder}/{name}" if folder else name
            item = self.stat(relative)
            if item is None:
                continue
            if item.is_dir:
                found[relative] = None
                found.update(self.tree(relative))
            else:
                found[relative] = self.read(relative)
        return found

    def wait_for(self, condition: Callable[[], T], *, timeout: float = 30.0, what: str = "the portal") -> T:
        """Poll ``condition`` until it returns something true; that value.  A failed
        assertion or an HTTP error status in ``condition`` counts as "not yet"."""
        return wait_for(condition, timeout, what, interval=0.1, ignoring=(AssertionError, httpx.HTTPStatusError))


def _item(info: ctera_xml.Obj) -> Item:
    return Item(
        name=ctera_xml.as_str(info.get("name")) or "",
        file_id=ctera_xml.as_str(info.get("fileId")),
        size=ctera_xml.as_int(info.get("size")) or 0,
        is_dir=bool(ctera_xml.as_bool(info.get("isFolder"))),
    )


def local_tree(top: Path, folder: str = "", *, skip: Collection[str] = ()) -> dict[str, bytes | None]:
    """What :meth:`PortalView.tree` gives for ``folder``, read from a local directory or a mount:
    every item below ``top / folder``, path relative to ``top`` → bytes (None for folders).

    ``skip``: names left out of ``top / folder`` itself (a mount root's ``.snapshots``).
    Anything but a file or a folder (a symlink, a FIFO …) fails the test: the portal has none.
    """
    found: dict[str, bytes | None] = {}

    def walk(path: Path, relative: str, left_out: Collection[str]) -> None:
        with os.scandir(path) as entries:
            listed = sorted(entries, key=lambda entry: entry.name)
        for entry in listed:
            if entry.name in left_out:
                continue
            child = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_dir(follow_symlinks=False):
                found[child] = None
                walk(Path(entry.path), child, ())
            else:
                assert entry.is_file(follow_symlinks=False), f"{child} is neither a file nor a folder"
                found[child] = Path(entry.path).read_bytes()

    walk(top / folder, folder, frozenset(skip))
    return found


@contextmanager
def portal_view(portal: PortalProcess, user: str = "alice") -> Iterator[PortalView]:
    with portal_http.logged_in(portal, user) as http:
        yield PortalView(portal, http, user)
