"""Folder listings, fetched once and shared.

A folder is listed page by page from the portal and kept as one
:class:`Listing` for ``ttl`` seconds.  Lookups, ``getattr`` of children and
readdirplus are all answered from it, so ``ls -l`` of a folder costs its
listing pages and nothing per file, and a desktop's probes for ``.hidden`` or
``desktop.ini`` cost nothing once the folder is known.

Concurrent requests for one folder share one fetch (single flight): a
``find`` that hits a cold folder from several kernel threads lists it once.
The number of listings kept is bounded (LRU); a listing past its ``ttl`` is
*stale*: it still answers questions that must not cost a request (probe
names), and is refetched for everything else.
"""

from __future__ import annotations

import functools

from collections.abc import Hashable
from dataclasses import dataclass, field

import trio
from cachetools import LRUCache

from vfs.backends.base import Backend, Path, RemoteEntry

PAGE_SIZE = 1000


async def list_all(backend: Backend, path: Path) -> list[RemoteEntry]:
    """Every entry of the folder at ``path``, asked of the portal page by page."""
    entries: list[RemoteEntry] = []
    start = 0
    while True:
        page = await backend.list_page(path, start, PAGE_SIZE)
        entries.extend(page.entries)
        if not page.has_more:
            return entries
        following = page.next_start if page.next_start is not None else start + len(page.entries)
        if following <= start:
            return entries  # a portal that does not advance would loop forever
        start = following


@dataclass(frozen=True)
class Listing:
    entries: tuple[RemoteEntry, ...]
    by_name: dict[str, RemoteEntry]
    fetched_at: float

    @functools.cached_property
    def positions(self) -> dict[str, int]:
        """Each name's place in ``entries``, made on first use (a listing never changes:
        a patch makes a new one)."""
        return {entry.name: index for index, entry in enumerate(self.entries)}

    @classmethod
    def of(cls, entries: list[RemoteEntry], fetched_at: float) -> Listing:
        return cls(tuple(entries), {e.name: e for e in entries}, fetched_at)


@dataclass
class _Flight:
    done: trio.Event = field(default_factory=trio.Event)
    result: Listing | None = None
    error: BaseException | None = None


class ListingCache:
    """Listings keyed by folder identity (not by path: a renamed folder keeps its listing)."""

    def __init__(self, backend: Backend, *, ttl: float, max_listings: int = 256) -> None:
        self._backend = backend
        self.ttl = ttl
        self._listings: LRUCache[Hashable, Listing] = LRUCache(maxsize=max_listings)
        self._flights: dict[Hashable, _Flight] = {}

    def peek(self, key: Hashable, *, allow_stale: bool = False) -> Listing | None:
        """The cached listing if fresh (or any age with ``allow_stale``), without fetching."""
        listing = self._listings.get(key)
        if listing is None:
            return None
        if allow_stale or trio.current_time() - listing.fetched_at <= self.ttl:
            return listing
        return None

    async def get(self, key: Hashable, path: Path) -> Listing:
        """The fresh listing of the folder at ``path``, fetching it if needed."""
        listing = self.peek(key)
        if listing is not None:
            return listing
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
            try:
                flight.result = await self._fetch(path)
                self._listings[key] = flight.result
            except BaseException as exc:
                flight.error = exc
                raise
            finally:
                del self._flights[key]
                flight.done.set()
            return flight.result
        await flight.done.wait()
        if flight.result is None:
            assert flight.error is not None
            if isinstance(flight.error, trio.Cancelled):
                return await self.get(key, path)  # the fetcher was cancelled, not us: try ourselves
            raise flight.error
        return flight.result

    async def _fetch(self, path: Path) -> Listing:
        return Listing.of(await list_all(self._backend, path), trio.current_time())

    def put(self, key: Hashable, entries: list[RemoteEntry]) -> None:
        """Remember a listing we know without asking (a folder we just created is empty)."""
        self._listings[key] = Listing.of(entries, trio.current_time())

    def patch(self, key: Hashable, name: str, entry: RemoteEntry | None) -> None:
        """Apply a change we made ourselves to a cached listing: ``name`` is now ``entry``
        (None: gone).  Keeps the listing's age, so the portal is still asked in due time."""
        listing = self._listings.get(key)
        if listing is None:
            return
        entries = [item for item in listing.entries if item.name != name]
        if entry is not None:
            entries.append(entry)
        self._listings[key] = Listing.of(entries, listing.fetched_at)

    def invalidate(self, key: Hashable) -> None:
        self._listings.pop(key, None)

    def clear(self) -> None:
        self._listings.clear()
