"""A folder's small files fetched together once a reader is seen working through them.

The problem: ``tar c``, ``cp -r``, ``grep -r``, ``rsync`` and file managers
making thumbnails open the files of a folder one after another.  For small
files the bytes are nothing; the cost is the request — a portal spends a few
milliseconds of work on each, and a reader waits a round trip for each.  The
portal can send a selection of a folder as one archive
(``Backend.read_together``), so the many requests can become one.

When: the *second* different small file opened in a folder within
``WINDOW`` seconds of the first.  One file opened alone (an editor, a
viewer) costs no more than it did; a reader going through the folder costs
one request for the first file and one for the rest, in listing order from
the file it opens.  A reader waits for the whole group its file is in, so
a group is sized to arrive in about ``GROUP_SECONDS`` at the rate earlier
archives came (1 MiB before one has), never more than the cache's
``group_fetch_bytes``.
Each later open of a file not yet asked for starts the next group, so a
folder of 10,000 files costs about ten requests, never a scan per open.

A reader that goes on from such a folder to another (``tar``, ``cp -r``,
``grep -r`` walk a tree) is a *walker*: its first open in the new folder
already counts as the second, and the folder after it — the next sibling,
if its listing is at hand because the walker listed it — is asked for at
once, so the walker finds each folder's files waiting instead of waiting a
round trip per folder.  That is the one speculative step: a walker that
stops early has fetched at most one folder (one group) too many.

Files the disk tier already holds (a remount) are not fetched: the cache
loads them into memory in one worker-thread hop for the group instead of
one per file (``BlockCache.fetch_together``).

Nothing is fetched for listing a folder (``ls -lR`` downloads nothing: no
file is opened) and nothing for files opened for writing.

What: regular, readable files of at most one cache block, as the folder's
fresh listing describes them (the portal's versions: a file written here is
read from the staging area whatever a group brings), not in ``.snapshots``
(an archive of a snapshot is not part of the protocol we know).  Their blocks are keyed by object id and
version like any other read, so a group can never be served for another
version.  The archive carries no version tag: a file changed on the portal
between the listing and the request is caught only if its size changed
(:mod:`vfs.backends.ctera.archives`), and then read on its own.

A portal that cannot make archives (three protocol errors in a row) is not
asked again by this mount; any other failure just means each file is read on
its own.  A request names at most ``MAX_REQUEST_PATHS`` bytes of paths (a
portal limits the size of a form), and names the files at the folder's path
*now*, not the path its listing was fetched under.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

import trio
from cachetools import LRUCache

from cache import BlockCache, FetchMany, ObjectKey
from vfs.backends.base import Backend, Path, ProtocolError, RemoteEntry
from vfs.listings import Listing

log = logging.getLogger(__name__)

#: Seconds between two opens in one folder that make them "a reader going through it".
WINDOW = 10.0

#: A group is sized to arrive in about this long at the rate archives have been coming:
#: a reader waits for a whole group, so on a slow link a group must stay small.
GROUP_SECONDS = 1.0

#: The first group's size, before any rate is known (a quarter of it is the least).
FIRST_GROUP = 1 << 20


@dataclass
class _FolderReads:
    """What was seen of the readers of one folder, for one listing of it."""

    listing: Listing
    last_name: str
    last_at: float
    #: names already asked for (or looked at and skipped): never looked at again
    asked: set[str] = field(default_factory=set)


#: The folder a walker reaches next: (its key, its fresh listing, its path now) or None.
NextFolder = Callable[[], "tuple[Hashable, Listing, Path] | None"]

#: Most bytes of paths one archive request names (a portal limits the size of a form).
MAX_REQUEST_PATHS = 256 << 10

#: Folders whose readers are followed at once.
MAX_FOLDERS = 64

#: Archive requests refused as malformed in a row before the portal is taken not to make them.
REFUSALS_TO_GIVE_UP = 3


class FolderPrefetch:
    """Decides when a folder's small files are fetched together, and starts it."""

    def __init__(self, backend: Backend, cache: BlockCache) -> None:
        self._backend = backend
        self._cache = cache
        self._folders: LRUCache[Hashable, _FolderReads] = LRUCache(maxsize=MAX_FOLDERS)
        self._off = cache.config.group_fetch_bytes == 0
        self._refusals = 0
        #: the folder a reader was last seen going through, its parent, and when
        self._walk: tuple[Hashable, Hashable, float] | None = None
        #: bytes per second the portal's archives came at (a moving average), once known
        self._rate: float | None = None

    def opened(self, folder: Hashable, parent: Hashable, listing: Listing, entry: RemoteEntry,
               folder_path: Callable[[], Path], next_folder: NextFolder) -> None:
        """``entry``, listed in ``listing`` of ``folder`` (in ``parent``), was opened for reading.

        ``folder_path`` gives the folder's path at the moment a request is
        made (it may have been renamed since the listing); ``next_folder``
        names the folder a reader walking the tree reaches next (the
        following sibling), if its listing is at hand.  The caller asked
        :meth:`wants` first.
        """
        now = trio.current_time()
        reads = self._folders.get(folder)
        if reads is None or reads.listing is not listing:
            reads = self._folders[folder] = _FolderReads(listing, "", -math.inf)
        follows = entry.name != reads.last_name and now - reads.last_at <= WINDOW
        walked_in = self._walked_in(folder, parent, now)
        reads.last_name, reads.last_at = entry.name, now
        if not (follows or walked_in):
            return
        self._walk = (folder, parent, now)
        if entry.name not in reads.asked:
            self._fetch(reads, entry.name, folder_path)
        if walked_in:  # a reader going from folder to folder: stay one folder ahead of it
            self._fetch_ahead(next_folder, now)

    def wants(self, entry: RemoteEntry) -> bool:
        """Could opening ``entry`` start a group?  (Cheap: asked on every open for reading.)"""
        return not self._off and self._small(entry)

    def _walked_in(self, folder: Hashable, parent: Hashable, now: float) -> bool:
        """Did a reader come here from a neighbouring folder it was going through (a sibling, or
        the parent)?  A lone ``cat`` elsewhere in the tree meanwhile is not a walker's step."""
        if self._walk is None or now - self._walk[2] > WINDOW:
            return False
        walked, walked_parent, _ = self._walk
        return walked != folder and (walked_parent == parent or walked == parent)

    def _fetch(self, reads: _FolderReads, start_name: str | None, folder_path: Callable[[], Path]) -> None:
        """Ask for the small files of the folder from ``start_name`` on (None: from its start).

        Walks the listing lazily, only as far as the cache takes files, so a
        group costs its own size whatever the folder's.
        """
        listing = reads.listing
        start = 0 if start_name is None else listing.positions.get(start_name)
        if start is None:
            return
        offered: list[RemoteEntry] = []
        wanted: dict[ObjectKey, RemoteEntry] = {}

        def keys() -> Iterator[ObjectKey]:
            named = 0
            for item in itertools.islice(listing.entries, start, None):
                if item.name in reads.asked:
                    continue
                if not self._small(item):
                    offered.append(item)
                    yield _NOT_SMALL
                    continue
                named += 3 * len(item.name.encode()) + 64
                if named > MAX_REQUEST_PATHS:
                    return
                offered.append(item)
                key = _key(item)
                wanted[key] = item
                yield key

        looked = self._cache.fetch_together(keys(), self._fetcher(wanted, folder_path), budget=self._budget())
        reads.asked.update(item.name for item in offered[:looked])

    def _fetch_ahead(self, next_folder: NextFolder, now: float) -> None:
        found = next_folder()
        if found is None:
            return
        folder, listing, path = found
        known = self._folders.get(folder)
        if known is not None and known.listing is listing:
            return  # asked for already (or a reader is in it)
        # Its first open by the reader then counts as following on from this one.
        reads = self._folders[folder] = _FolderReads(listing, "", now)
        self._fetch(reads, None, lambda: path)

    def _small(self, entry: RemoteEntry) -> bool:
        return not entry.is_dir and entry.readable and 0 < entry.size <= self._cache.config.block_size

    def _budget(self) -> int:
        """Bytes for the next group: what the portal's archives deliver in ``GROUP_SECONDS``."""
        ceiling = self._cache.config.group_fetch_bytes
        if self._rate is None:
            return min(FIRST_GROUP, ceiling)
        return int(min(ceiling, max(FIRST_GROUP // 4, self._rate * GROUP_SECONDS)))

    def _fetcher(self, wanted: dict[ObjectKey, RemoteEntry], folder_path: Callable[[], Path]) -> FetchMany:
        async def fetch_many(keys: list[ObjectKey]) -> dict[ObjectKey, bytes]:
            # Where the folder is *now*: a listing keeps the paths it was fetched with, and a folder
            # renamed since would make the request name whatever took its old place.
            folder = folder_path()
            entries = [dataclasses.replace(entry, path=(*folder, entry.name)) if entry.path[:-1] != folder
                       else entry for entry in (wanted[key] for key in keys)]
            started = trio.current_time()
            try:
                got = await self._backend.read_together(entries)
            except ProtocolError as exc:
                self._refusals += 1
                if self._refusals >= REFUSALS_TO_GIVE_UP and not self._off:
                    log.warning("the portal does not send files together (%s); small files are read one by one "
                                "from now on", exc)
                    self._off = True
                raise
            self._refusals = 0
            sample = sum(map(len, got.values())) / max(trio.current_time() - started, 1e-3)
            self._rate = sample if self._rate is None else (self._rate + sample) / 2
            return {key: got[key.object_id] for key in keys if key.object_id in got}

        return fetch_many


def _key(entry: RemoteEntry) -> ObjectKey:
    return ObjectKey(entry.object_id, entry.version, entry.size)


#: Stands in for an entry that is not a small file: the cache looks at it and skips it
#: (an empty object is never fetched), so the count of looked-at entries stays aligned.
_NOT_SMALL = ObjectKey("", "", 0)
