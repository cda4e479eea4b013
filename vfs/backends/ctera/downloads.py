"""Ranged reads of one file version over WebDAV ``GET``, with stale-content detection.

A read is ``GET {ctx}/webdav/<href>`` with ``Range: bytes=a-b`` (spec §4.4;
the reference portal honours one range, docs/PROTOCOL-CHOICES.md #2-#3).  The
cache above keys blocks by ``(object_id, version)``, so the one thing a read
must never do is return bytes of *another* version under that key.  The
listing's ``version`` is only as fine as ``size`` and a one-second
``lastmodified``; the server's ``ETag`` is finer, so:

* The first successful read of an (object, version, path) **binds** the
  strong ETag it returned.  Later reads send ``If-Range: <etag>``: a server
  holding other content then answers 200 with the whole new file instead of
  206.  A 200 with a *different* ETag, or a 206 whose ETag differs, is
  :class:`StaleVersion`.  (A 200 with the *same* ETag is a server that
  ignores ``Range``; see below.)
* Every reply is checked against the entry: the total size in
  ``Content-Range`` (or ``Content-Length`` of a 200) must equal
  ``entry.size``; while no ETag is bound, ``Last-Modified`` must be within
  :data:`MTIME_TOLERANCE` of ``entry.mtime``.  Portals whose naive listing
  times are local time rather than UTC (spec §3.5 leaves it open) would be
  off by a whole number of quarter hours, so such an offset is forgiven
  rather than failing every first read; size and ETag still apply.
* A server that ignores ``Range`` answers 200 with the whole file.  The body
  is streamed, bytes before ``offset`` are discarded, and up to
  ``max(length, max_overread)`` bytes from ``offset`` are returned: **more
  than asked for**, so the cache above can keep them instead of downloading
  the file again for the next block.  Streaming stops there and the
  connection is dropped.
* 416 means the range starts at or past the end: the read returns ``b""``
  (after checking the ``*/size`` the server reports).  Reads at or past
  ``entry.size`` return ``b""`` without a request.

When the ETag shows that an unchanged listing version now hides other
content (two same-size uploads within one second), later entries with that
version get a ``#<epoch>`` suffix (:class:`VersionEpochs`), so the re-stat
after the StaleVersion yields a version the cache has never seen.

ETag bindings live in a bounded LRU keyed by ``(object_id, version, path)``:
the path is part of the key because a snapshot copy and the live file may
share id and version but are served by different URLs.

After an upload through this backend (:meth:`RangeReader.content_replaced`)
the bindings of the uploaded file are dropped, and if one of them was bound
under the very version string the new content now shows (same size, same
second), that string is bumped at once rather than at the next read.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import re
from collections import OrderedDict

from vfs.backends.base import IsADirectory, ProtocolError, RemoteEntry, StaleVersion
from vfs.backends.ctera.bodies import receive
from vfs.backends.ctera.bulk import BulkResponse
from vfs.backends.ctera.counters import RequestKind
from vfs.backends.ctera.paths import href_of
from vfs.backends.ctera.session import AnyResponse, Session

__all__ = ["DEFAULT_MAX_OVERREAD", "MTIME_TOLERANCE", "RangeReader", "VersionEpochs"]

log = logging.getLogger(__name__)

#: The most a read returns beyond what was asked, when a server ignores Range.
DEFAULT_MAX_OVERREAD = 64 << 20
#: How far ``Last-Modified`` may be from the listing's time (HTTP dates have 1 s resolution).
MTIME_TOLERANCE = 2.0
#: How many ETag bindings are remembered.
ETAG_BINDINGS = 16384
#: How many ambiguous listing versions are remembered.
EPOCHS = 4096

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)

BindingKey = tuple[str, str, tuple[str, ...]]


class RangeReader:
    """Reads byte ranges of file versions through one :class:`Session`."""

    def __init__(self, session: Session, *, max_overread: int = DEFAULT_MAX_OVERREAD) -> None:
        self._session = session
        self._max_overread = max_overread
        self._etags: OrderedDict[BindingKey, str] = OrderedDict()
        self._epochs = VersionEpochs()

    async def read(self, entry: RemoteEntry, offset: int, length: int) -> bytes:
        """One attempt at reading ``length`` bytes of ``entry`` from ``offset``."""
        if entry.is_dir:
            raise IsADirectory(f"/{'/'.join(entry.path)} is a folder")
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        if length == 0 or offset >= entry.size:
            return b""
        last = min(offset + length, entry.size) - 1
        key: BindingKey = (entry.object_id, entry.version, entry.path)
        bound = self._etags.get(key)
        headers = {"range": f"bytes={offset}-{last}", "accept-encoding": "identity"}
        if bound is not None:
            headers["if-range"] = bound
            self._etags.move_to_end(key)
        what = f"read of /{'/'.join(entry.path)} at {offset}"
        session = self._session
        path = href_of(session.context, entry.path)
        async with session.open("GET", path, kind=RequestKind.READ, what=what, headers=headers, bulk=True) as response:
            status = response.status_code
            if status == 416:
                self._check_unsatisfiable(response, entry, what)
                return b""
            if not response.is_success:
                raise await session.error_of(response, what=what)
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                # Ranges of an encoded body are ranges of the *encoded* bytes: useless here.
                raise ProtocolError(f"{what}: the portal sent {encoding!r}-encoded content despite identity")
            etag = _strong_etag(response.headers.get("etag"))
            if status == 206:
                skip, wanted = self._check_partial(response, entry, offset, bound, etag, what), last - offset + 1
            elif status == 200:
                skip = self._check_whole(response, entry, offset, bound, etag, what)
                wanted = min(entry.size - offset, max(length, self._max_overread))
            else:
                raise ProtocolError(f"{what}: unexpected HTTP {status}")
            if bound is None:
                self._check_mtime(response, entry, what)
            data = await self._receive(response, skip, wanted, what)
        if status == 206 and len(data) < wanted:
            raise ProtocolError(f"{what}: the portal sent {len(data)} of the {wanted} bytes it promised")
        if status == 200 and len(data) < min(length, entry.size - offset):
            raise ProtocolError(f"{what}: the body ended after {len(data)} bytes, before the file's end")
        if bound is None and etag is not None:
            self._bind(key, etag)
        return data

    # ------------------------------------------------------------ checks

    def _stale(self, entry: RemoteEntry, what: str, why: str) -> StaleVersion:
        self._session.counters.stale_versions += 1
        log.info("%s: stale version %s of /%s: %s", what, entry.version, "/".join(entry.path), why)
        return StaleVersion(f"{what}: the portal holds another version now ({why})")

    def _ambiguous(self, entry: RemoteEntry, what: str, etag: str | None, bound: str) -> StaleVersion:
        """Stale by ETag: the listing's version string no longer tells versions apart."""
        self._epochs.bump(entry)
        return self._stale(entry, what, f"ETag {etag}, expected {bound}")

    def refine(self, entry: RemoteEntry) -> RemoteEntry:
        """``entry`` with its version refined by what reads have learnt (see :class:`VersionEpochs`)."""
        return self._epochs.refine(entry)

    def content_replaced(self, entry: RemoteEntry) -> RemoteEntry:
        """``entry`` (as described right after new content was uploaded to it), with
        every ETag bound for its object forgotten and its version told apart from
        any earlier content that showed the same version string."""
        stale = [key for key in self._etags if key[0] == entry.object_id]
        for key in stale:
            del self._etags[key]
        if any(key[1] == entry.version for key in stale):
            self._epochs.bump(entry)
            return self._epochs.refine(dataclasses.replace(entry, version=_base_version(entry.version)))
        return entry

    def _check_partial(
        self, response: AnyResponse, entry: RemoteEntry, offset: int, bound: str | None, etag: str | None, what: str
    ) -> int:
        """Validate a 206; the number of leading bytes to discard."""
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if match is None or match.group(1) is None:
            raise ProtocolError(f"{what}: 206 without a usable Content-Range")
        first, total = int(match.group(1)), match.group(3)
        if total != "*" and int(total) != entry.size:
            raise self._stale(entry, what, f"size {total}, expected {entry.size}")
        if bound is not None and etag is not None and etag != bound:
            raise self._ambiguous(entry, what, etag, bound)
        if first > offset:
            raise ProtocolError(f"{what}: asked for bytes from {offset}, got a range from {first}")
        return offset - first

    def _check_whole(
        self, response: AnyResponse, entry: RemoteEntry, offset: int, bound: str | None, etag: str | None, what: str
    ) -> int:
        """Validate a 200 (the whole file); the number of leading bytes to discard."""
        if bound is not None and etag != bound:
            # If-Range did its job: the server's content is no longer the bound one.
            raise self._ambiguous(entry, what, etag, bound)
        declared = response.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) != entry.size:
            raise self._stale(entry, what, f"size {declared.strip()}, expected {entry.size}")
        self._session.counters.ranges_ignored += 1
        log.debug("%s: the portal ignored Range and sent the whole file", what)
        return offset

    def _check_unsatisfiable(self, response: AnyResponse, entry: RemoteEntry, what: str) -> None:
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if match is not None and match.group(3) != "*" and int(match.group(3)) != entry.size:
            raise self._stale(entry, what, f"size {match.group(3)}, expected {entry.size}")

    def _check_mtime(self, response: AnyResponse, entry: RemoteEntry, what: str) -> None:
        header = response.headers.get("last-modified")
        if not header or entry.mtime <= 0:
            return
        try:
            modified = email.utils.parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError):
            return
        if not _same_time(modified, entry.mtime):
            raise self._stale(entry, what, f"modified at {header}, listed at {entry.mtime:.0f}")

    # ------------------------------------------------------------ body

    async def _receive(self, response: AnyResponse, skip: int, wanted: int, what: str) -> bytes:
        """``wanted`` bytes of the body after discarding ``skip``; fewer if it ends first."""
        counters = self._session.counters

        def count(received: int) -> None:
            counters.content_bytes += received
            counters.bytes_received += received

        if isinstance(response, BulkResponse):
            # The skipping and the stop at ``wanted`` are done on the worker thread.
            data, received = await response.read_range(skip, wanted)
            count(received)
            return bytes(data)
        data = bytearray()
        to_skip = skip

        def take(chunk: bytes) -> bool:
            nonlocal to_skip
            count(len(chunk))
            if to_skip:
                dropped = min(to_skip, len(chunk))
                chunk, to_skip = chunk[dropped:], to_skip - dropped
            data.extend(chunk)
            # Stop once *more* than wanted has arrived: a body of exactly the wanted size
            # (every 206) ends by itself and its connection goes back to the pool; only
            # the surplus of a whole-file reply makes us drop the connection.
            return len(data) <= wanted

        await receive(response, take, what=what, url=self._session.url)
        del data[wanted:]
        return bytes(data)

    def _bind(self, key: BindingKey, etag: str) -> None:
        self._etags[key] = etag
        self._etags.move_to_end(key)
        while len(self._etags) > ETAG_BINDINGS:
            self._etags.popitem(last=False)


class VersionEpochs:
    """Listing versions that an ETag proved ambiguous, and how many times.

    The listing's version (``fileId:size:lastmodified``) cannot tell apart two
    uploads of the same size within one second; the ETag can.  When a read
    finds another ETag behind an unchanged version string, the string is
    "bumped": from then on every entry this backend describes with that
    string gets a ``#<epoch>`` suffix, so the re-stat that follows a
    StaleVersion yields a *new* version, and the cache above (keyed by
    version) starts afresh instead of mixing blocks of two versions.
    Remembered in memory only, for the most recent :data:`EPOCHS` versions.
    """

    def __init__(self) -> None:
        self._epochs: OrderedDict[tuple[str, str], int] = OrderedDict()

    def bump(self, entry: RemoteEntry) -> None:
        key = (entry.object_id, _base_version(entry.version))
        self._epochs[key] = max(self._epochs.get(key, 0), _epoch_of(entry.version)) + 1
        self._epochs.move_to_end(key)
        while len(self._epochs) > EPOCHS:
            self._epochs.popitem(last=False)

    def refine(self, entry: RemoteEntry) -> RemoteEntry:
        epoch = self._epochs.get((entry.object_id, entry.version))
        if not epoch:
            return entry
        return dataclasses.replace(entry, version=f"{entry.version}#{epoch}")


def _base_version(version: str) -> str:
    return version.split("#", 1)[0]


def _epoch_of(version: str) -> int:
    _, _, epoch = version.partition("#")
    return int(epoch) if epoch.isdigit() else 0


def _strong_etag(header: str | None) -> str | None:
    """The ETag if it is strong (``If-Range`` needs a strong one), else None."""
    if not header:
        return None
    tag = header.strip()
    return None if tag.startswith("W/") else tag


def _same_time(a: float, b: float) -> bool:
    """Within tolerance, or off by a whole number of quarter hours (a time-zone slip, < 15 h)."""
    difference = abs(a - b)
    if difference <= MTIME_TOLERANCE:
        return True
    quarter = 900.0
    remainder = difference % quarter
    near_quarter = min(remainder, quarter - remainder) <= MTIME_TOLERANCE
    return near_quarter and difference <= 15 * 3600 + MTIME_TOLERANCE
