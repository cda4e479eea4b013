"""Cloud folder uids: the folder that uploads and ZIP downloads are addressed to (spec §4.5, §4.6).

Two requests name a *cloud folder* in their URL rather than the items they
are about: an upload (``POST {ctx}/upload/folders/<uid>``) and a ZIP
download (``POST {ctx}/folders/folders/<uid>``).  The uid is
``cloudFolderInfo.uid`` of the folder the items sit in, and only a
``fetchResources`` reply that describes that folder says it.

* :class:`FolderUids` remembers it per folder, learnt from any reply that
  describes a folder (stat, listing, mkdir), so many requests into one
  folder cost one lookup, often none.
* :meth:`CloudFolders.send` runs one request with the uid: a remembered one,
  or one looked up with a depth-0 ``fetchResources`` of the folder.  The
  caller's *refusal* turns that description into the error the portal would
  give (an upload into the root, a "folder" that is a file), so such a
  request fails before anything is sent.
* A uid is the cloud folder's, and a folder can move into another cloud
  folder after its uid was learnt.  So a request refused (NotFound,
  ProtocolError) under a *remembered* uid makes the folder be looked up
  again, and the request is sent once more only if that gives another uid:
  the same uid means the refusal was about the request, not the uid, and it
  stands (sending it again would just be refused again), and the uids
  remembered below the folder stay.  Another uid, or a failed lookup, forgets
  the folder's whole subtree.
"""

from __future__ import annotations

import logging
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from vfs.backends.base import BackendError, NotFound, Path, ProtocolError, RemoteEntry
from vfs.backends.ctera.resources import Placement

__all__ = ["FOLDER_UIDS", "CloudFolders", "Describe", "FolderUids", "Refusal"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How many folders' cloud folder uids are remembered.
FOLDER_UIDS = 4096

#: One attempt at describing a folder: its entry and where it sits.
Describe = Callable[[Path], Awaitable[tuple[RemoteEntry, Placement]]]
#: Why nothing may be sent into a folder so described, or None when it may.
Refusal = Callable[[RemoteEntry, Placement], BackendError | None]


class FolderUids:
    """Folder path → uid of its cloud folder, bounded LRU.

    Keys are compared the way the portal compares names (case-insensitively,
    in NFC): the uid depends on where a folder is, so two spellings of one
    path share it.  Moves and deletes forget whole subtrees.
    """

    def __init__(self, size: int = FOLDER_UIDS) -> None:
        self._size = size
        self._uids: OrderedDict[Path, str] = OrderedDict()

    def get(self, folder: Path) -> str | None:
        key = _key(folder)
        uid = self._uids.get(key)
        if uid is not None:
            self._uids.move_to_end(key)
        return uid

    def learn(self, folder: Path, uid: str | None) -> None:
        if uid is None:
            return
        key = _key(folder)
        self._uids[key] = uid
        self._uids.move_to_end(key)
        while len(self._uids) > self._size:
            self._uids.popitem(last=False)

    def forget(self, top: Path) -> None:
        """Forget ``top`` and every folder below it."""
        prefix = _key(top)
        for key in [key for key in self._uids if key[: len(prefix)] == prefix]:
            del self._uids[key]

    def __len__(self) -> int:
        return len(self._uids)


def _key(path: Path) -> Path:
    return tuple(unicodedata.normalize("NFC", name).casefold() for name in path)


class CloudFolders:
    """Sends requests addressed to a folder's cloud folder uid (see the module docstring)."""

    def __init__(self, uids: FolderUids, describe: Describe) -> None:
        self._uids = uids
        self._describe = describe

    async def send(
        self,
        folder: Path,
        request: Callable[[str], Awaitable[T]],
        *,
        refusal: Refusal,
        what: str,
        fresh: bool = False,
    ) -> T:
        """``request(uid)`` for the cloud folder of ``folder``: one attempt (and its one
        repeat when a remembered uid turns out to be out of date).

        ``fresh`` looks the folder up even when its uid is remembered.  Errors
        of the lookup (NotFound, the refusal's) and of the request are raised.
        """
        remembered = None if fresh else self._uids.get(folder)
        if remembered is None:
            return await request(await self._look_up(folder, refusal))
        try:
            return await request(remembered)
        except (NotFound, ProtocolError) as exc:
            log.info("%s: refused with a remembered cloud folder uid (%s); looking it up again", what, exc)
            try:
                uid = await self._look_up(folder, refusal)
            except BackendError:
                self._uids.forget(folder)  # the folder itself is gone or changed: its subtree too
                raise
            if uid == remembered:
                raise  # the refusal was about the request; what is remembered below still holds
            self._uids.forget(folder)  # another cloud folder: what was learnt below it is wrong too
            self._uids.learn(folder, uid)
        return await request(uid)

    async def _look_up(self, folder: Path, refusal: Refusal) -> str:
        entry, placement = await self._describe(folder)
        error = refusal(entry, placement)
        if error is not None:
            raise error
        if placement.cloud_folder_uid is None:
            # A refusal is expected to have said why; this is the backstop.
            raise ProtocolError(f"/{'/'.join(folder)} belongs to no cloud folder")
        self._uids.learn(folder, placement.cloud_folder_uid)
        return placement.cloud_folder_uid
