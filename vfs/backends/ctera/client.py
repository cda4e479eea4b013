"""``CteraBackend``: the :class:`~vfs.backends.base.WritableBackend` protocol for a CTERA Portal.

============================  ================================================
backend call                  wire (spec section)
============================  ================================================
``stat(path)``                ``fetchResources`` depth 0; ``root`` null → NotFound (§4.2.2)
``list_page(path, s, n)``     ``fetchResources`` depth 1, ``start``/``limit`` (§4.2)
``read(entry, off, n)``       ``GET {ctx}/webdav/<href>`` with ``Range`` (§4.4; :mod:`.downloads`)
``read_together(entries)``    ``POST {ctx}/folders/folders/<uid>``, one ZIP (§4.5; :mod:`.archives`)
``list_snapshots(path)``      ``listSnapshots`` (§4.3; :mod:`.snapshots`)
``quota(path)``               ``PROPFIND`` on the cloud folder (:mod:`.quota`)
``upload(path, src, n)``      multipart ``POST {ctx}/upload/folders/<uid>`` (§4.6; :mod:`.uploads`)
``upload_streamed(…)``        chunked ``PUT {ctx}/webdav/<href>``, length unknown (:mod:`.streamed_uploads`)
``make_folder(path)``         ``makeCollection`` (§4.7; :mod:`.changes`)
``move``/``copy``/``delete``  background tasks, polled (§4.8, §5; :mod:`.changes`, :mod:`.tasks`)
``list_deleted(path)``        ``fetchResources`` depth 1 with ``includeDeleted`` (§4.8)
``undelete(path)``            ``restoreResources``, polled (§4.8)
============================  ================================================

Every read is one :class:`~vfs.backends.retry.RetryPolicy` run around one
attempt; every attempt goes through the :class:`~.session.Session`, which
handles session expiry.  Reads are idempotent, so a 500 is retried like a
502/503/504.  How writes are retried is explained in :mod:`.uploads` and
:mod:`.tasks`.

Listing pages do not need a depth-0 call first (unlike the SDK's listdir): a
depth-1 reply carries ``root`` itself, which tells "missing"
(``DestinationNotExists``) and "a file" (``isFolder`` false) apart.

:func:`open_ctera_backend` is the way to get one: it logs in on entry (one
attempt, so a wrong password or a dead portal is reported at once with a
one-line reason) and logs out and closes every connection on exit.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import TypeVar

import httpx
import trio

from vfs.backends.base import (
    NotADirectory,
    NotFound,
    Page,
    Path,
    ProtocolError,
    Quota,
    RemoteEntry,
    SnapshotRef,
    Transient,
    UploadSource,
)
from vfs.backends.ctera.archives import Archives
from vfs.backends.ctera.bulk import BulkTransport, bulk_transport_for
from vfs.backends.ctera.changes import Changes
from vfs.backends.ctera.cloud_folders import CloudFolders, FolderUids
from vfs.backends.ctera.connection import (
    DEFAULT_TIMEOUTS,
    Timeouts,
    make_client,
    ssl_context,
)
from vfs.backends.ctera.counters import Counters, CteraStatistics, RequestKind
from vfs.backends.ctera.downloads import DEFAULT_MAX_OVERREAD, RangeReader
from vfs.backends.ctera.errors import error_for_code
from vfs.backends.ctera.execute import execute
from vfs.backends.ctera.paths import href_of, storable_name_error
from vfs.backends.ctera.quota import propfind_quota
from vfs.backends.ctera.resources import (
    Placement,
    child_entries,
    decode_fetch_reply,
    entry_of,
    placement_of,
)
from vfs.backends.ctera.session import ADMIN, SERVICES, Session
from vfs.backends.ctera.snapshots import snapshot_refs
from vfs.backends.ctera.tasks import TaskRunner
from vfs.backends.ctera.streamed_uploads import StreamedUploader
from vfs.backends.ctera.uploads import Uploader
from vfs.backends.retry import RetryPolicy
from wire import ctera_xml
from wire.ctera_xml import Obj, XmlDecodeError, obj

__all__ = ["CteraBackend", "open_ctera_backend"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Closing never holds up a shutdown longer than this.
CLOSE_TIMEOUT = 10.0

_plain_http_warned = False


class CteraBackend:
    """A CTERA Portal seen through one user's session in one context.

    Paths are tuples of names below the context's WebDAV root: for an end
    user ``("My Files", "Documents")``; for a global administrator
    (``admin=True``) ``("Users", "<owner>", "My Files", …)``.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        user: str,
        password: str,
        admin: bool = False,
        retry: RetryPolicy | None = None,
        max_overread: int = DEFAULT_MAX_OVERREAD,
        task_timeout: float = DEFAULT_TIMEOUTS.task,
        bulk: BulkTransport | None = None,
    ) -> None:
        self._counters = Counters()
        self._session = Session(
            client, context=ADMIN if admin else SERVICES, user=user, password=password, counters=self._counters,
            bulk=bulk,
        )
        self._reader = RangeReader(self._session, max_overread=max_overread)
        self._retry = retry if retry is not None else RetryPolicy()
        self._client = client
        self._closed = False
        self._default_quota_folder: Path | None = None
        self._uids = FolderUids()
        folders = CloudFolders(self._uids, self._describe_once)
        self._archives = Archives(self._session, self._retry, folders, on_retry=self._count_retry)
        self._uploader = Uploader(
            self._session, self._retry, self._counters, folders, stat=self.stat, on_retry=self._count_retry
        )
        self._streamed_uploader = StreamedUploader(self._session, self._counters, stat=self.stat)
        tasks = TaskRunner(
            self._session, self._retry, self._counters, timeout=task_timeout, on_retry=self._count_retry
        )
        self._changes = Changes(
            self._session, self._retry, self._counters, tasks, self._uids,
            describe=self._describe_once, stat=self.stat, refine=self._reader.refine, on_retry=self._count_retry,
        )

    def __repr__(self) -> str:
        return f"<CteraBackend {self._session!r}>"

    @property
    def context(self) -> str:
        """``/ServicesPortal`` or ``/admin``."""
        return self._session.context

    @property
    def url(self) -> str:
        return self._session.url

    def statistics(self) -> CteraStatistics:
        """A snapshot of what this backend has sent and received so far."""
        return self._counters.snapshot()

    async def login(self) -> None:
        """Log in (one attempt): AuthenticationFailed, Unreachable, Transient or ProtocolError."""
        await self._session.login()

    async def aclose(self) -> None:
        """Log out and close every connection; safe to call twice, bounded, never raises."""
        if self._closed:
            return
        self._closed = True
        with trio.move_on_after(CLOSE_TIMEOUT) as scope:
            scope.shield = True
            try:
                await self._session.logout()
            finally:
                if self._session.bulk is not None:
                    self._session.bulk.close()
                await self._client.aclose()

    # ----------------------------------------------------------- metadata

    async def stat(self, path: Path) -> RemoteEntry:
        """Describe the item at ``path`` (``fetchResources`` depth 0).  NotFound if none."""
        return await self._retrying(lambda: self._stat_once(path))

    async def _stat_once(self, path: Path) -> RemoteEntry:
        entry, _ = await self._describe_once(path)
        return entry

    async def _describe_once(self, path: Path) -> tuple[RemoteEntry, Placement]:
        """One depth-0 ``fetchResources``: the entry, and where it sits (for writes)."""
        href = href_of(self.context, path)
        what = f"stat of /{'/'.join(path)}"
        param = obj("FetchResourcesParam", start=0, limit=1, root=href, depth=0)
        value = await self._execute("fetchResources", param, kind=RequestKind.STAT, what=what)
        reply = decode_fetch_reply(value, what=what)
        if reply.root is None:
            raise NotFound(f"{what}: no such file or folder")
        entry = self._entry(reply.root, path, href, what)
        return entry, self._placement(reply.root, entry, what)

    def _placement(self, info: Obj, entry: RemoteEntry, what: str) -> Placement:
        """Where ``info`` sits; a folder's cloud folder uid is remembered for uploads into it."""
        try:
            placement = placement_of(info)
        except XmlDecodeError as exc:
            raise ProtocolError(f"{what}: undecodable item ({exc})") from None
        if entry.is_dir:
            self._uids.learn(entry.path, placement.cloud_folder_uid)
        return placement

    async def list_page(self, path: Path, start: int, limit: int) -> Page:
        """Children of the folder at ``path`` from ``start`` (``fetchResources`` depth 1).

        The portal may return fewer than ``limit`` entries per page (the
        reference portal caps pages at 1000).  Hostile entries are skipped and
        logged; ``Page.next_start`` says where the next page starts, counting
        skipped entries.  NotFound, NotADirectory.
        """
        if start < 0 or limit < 1:
            raise ValueError("start must be >= 0 and limit >= 1")
        return await self._retrying(lambda: self._list_page_once(path, start, limit))

    async def _list_page_once(self, path: Path, start: int, limit: int) -> Page:
        href = href_of(self.context, path)
        what = f"listing of /{'/'.join(path)} from {start}"
        param = obj("FetchResourcesParam", start=start, limit=limit, root=href, depth=1)
        value = await self._execute("fetchResources", param, kind=RequestKind.LIST, what=what)
        reply = decode_fetch_reply(value, what=what)
        if reply.error_type is not None:
            raise error_for_code(reply.error_type, what=what)
        if reply.root is None:
            raise NotFound(f"{what}: no such folder")
        folder = self._entry(reply.root, path, href, what)
        if not folder.is_dir:
            raise NotADirectory(f"{what}: not a folder")
        self._placement(reply.root, folder, what)
        entries = [self._reader.refine(entry) for entry in child_entries(reply, path, self.context)]
        self._counters.rejected_entries += len(reply.items) - len(entries)
        # An empty page ends the listing whatever hasMore says (spec §4.2), so a
        # portal that always says "more" cannot keep a reader looping.
        return Page(entries=entries, has_more=reply.has_more and bool(reply.items), next_start=start + len(reply.items))

    def _entry(self, info: Obj, path: Path, href: str, what: str) -> RemoteEntry:
        try:
            return self._reader.refine(entry_of(info, path, href=href))
        except XmlDecodeError as exc:
            raise ProtocolError(f"{what}: undecodable item ({exc})") from None

    async def list_snapshots(self, path: Path) -> list[SnapshotRef]:
        """Where ``path`` can be found in each snapshot, oldest first (``listSnapshots``)."""
        return await self._retrying(lambda: self._list_snapshots_once(path))

    async def _list_snapshots_once(self, path: Path) -> list[SnapshotRef]:
        href = href_of(self.context, path)
        what = f"snapshots of /{'/'.join(path)}"
        value = await self._execute("listSnapshots", href, kind=RequestKind.SNAPSHOTS, what=what)
        if value is None or value == "":
            return []
        return snapshot_refs(value, self.context, what=what)

    # -------------------------------------------------------------- content

    async def read(self, entry: RemoteEntry, offset: int, length: int) -> bytes:
        """Bytes of ``entry``'s content from ``offset``: ``length`` of them, fewer only at the end.

        **May return more than** ``length`` bytes (at most ``max_overread``,
        64 MiB by default) when the portal ignores ``Range`` and sends the
        whole file: the extra bytes follow on from ``offset + length`` and the
        cache is expected to keep them.  Never returns bytes of a version
        other than ``entry.version``: StaleVersion instead (see
        :mod:`vfs.backends.ctera.downloads`).  ``b""`` at or past the end.
        NotFound, PermissionDenied, IsADirectory.
        """
        return await self._retrying(lambda: self._reader.read(entry, offset, length))

    async def read_together(self, entries: Sequence[RemoteEntry]) -> dict[str, bytes]:
        """The whole content of several files of one folder, in one request, by ``object_id``.

        ``entries`` must be files of one folder (ValueError otherwise; ``[]``
        is ``{}`` without a request).  The answer holds the files the portal's
        ZIP delivered intact with exactly ``entry.size`` bytes, and the empty
        files; any other is simply absent, for the caller to :meth:`read`.
        The size is the only version check (a ZIP has no ETag), so ask only
        for entries just listed.  The reply is read into memory, bounded by
        the sizes plus room for ZIP's headers (longer: ProtocolError), so the
        caller keeps the total small.  Errors of the request as a whole are
        raised like :meth:`read`'s: NotFound (a file was deleted meanwhile:
        the portal refuses the whole selection), PermissionDenied, Transient
        after retries, ProtocolError (the reply is no ZIP).  See
        :mod:`vfs.backends.ctera.archives`.
        """
        return await self._archives.read_together(entries)

    # ---------------------------------------------------------------- quota

    async def quota(self, path: Path = ()) -> Quota | None:
        """Usage and quota of the cloud folder holding ``path`` (RFC 4331 on PROPFIND).

        Without a path, an end user's first cloud folder is asked (usage and
        quota are per user, so any of them answers for the user); a global
        administrator has no quota of their own and gets None.  None also
        when the portal does not report one.
        """
        folder = await self._quota_folder(path)
        if folder is None:
            return None
        return await self._retrying(lambda: propfind_quota(self._session, href_of(self.context, folder)))

    async def _quota_folder(self, path: Path) -> Path | None:
        if self.context == ADMIN:
            return path[:3] if len(path) >= 3 and path[0] == "Users" else None
        if path:
            return path[:1]
        if self._default_quota_folder is None:
            page = await self.list_page((), 0, 1)
            if not page.entries:
                return None
            self._default_quota_folder = page.entries[0].path
        return self._default_quota_folder

    # --------------------------------------------------------------- writes

    async def upload(self, path: Path, source: UploadSource, size: int) -> RemoteEntry:
        """Make ``size`` bytes from ``source()`` the content of the file at ``path``.

        A new version of an existing file (same ``object_id``) or a new file;
        returns the file as the portal describes it afterwards.  ``source`` is
        called again for every attempt (see :mod:`vfs.backends.ctera.uploads`).
        IsADirectory, NotFound / NotADirectory (parent), QuotaExceeded,
        InvalidName, ReadOnly, PermissionDenied.
        """
        entry = await self._uploader.upload(path, source, size)
        return self._reader.content_replaced(entry)

    async def upload_streamed(self, path: Path, content: AsyncIterator[bytes], *, new: bool) -> RemoteEntry:
        """A WebDAV ``PUT`` of ``content``, whose length is not known yet (one attempt; see
        :mod:`vfs.backends.ctera.streamed_uploads`).  Unsupported if the portal takes no PUT."""
        entry = await self._streamed_uploader.upload(path, content, new=new)
        return self._reader.content_replaced(entry)

    def check_name(self, name: str) -> None:
        """InvalidName (NameTooLong) if the portal would refuse ``name`` for a new item."""
        error = storable_name_error(name)
        if error is not None:
            raise error

    async def make_folder(self, path: Path) -> RemoteEntry:
        """Create the folder ``path`` (``makeCollection``).  Exists, NotFound, InvalidName, ReadOnly."""
        return await self._changes.make_folder(path)

    async def move(self, source: Path, target: Path, *, replace: bool = False) -> None:
        """Rename and/or move ``source`` to ``target`` (the item keeps its identity).

        Exists when ``target`` is taken, unless ``replace`` (the occupant goes
        to the recycle bin).  NotFound (source, or target's parent).
        """
        await self._changes.move(source, target, replace=replace)

    async def copy(self, source: Path, target: Path, *, replace: bool = False) -> None:
        """Copy ``source`` (a file or a whole folder) to ``target`` on the portal.  As :meth:`move`."""
        await self._changes.copy(source, target, replace=replace)

    async def delete(self, path: Path) -> None:
        """Send ``path`` (a file, or a folder with everything in it) to the recycle bin.  NotFound."""
        await self._changes.delete(path)

    async def list_deleted(self, path: Path) -> list[RemoteEntry]:
        """The deleted children of the folder ``path`` that can be brought back, one per name."""
        return await self._changes.list_deleted(path)

    async def undelete(self, path: Path) -> None:
        """Bring back the most recently deleted item at ``path``.  NotFound, Exists (name taken)."""
        await self._changes.undelete(path)

    # -------------------------------------------------------------- helpers

    async def _execute(self, name: str, param: ctera_xml.Value, *, kind: str, what: str) -> ctera_xml.Value:
        """One ``execute`` call (spec §3.1); the decoded reply."""
        return await execute(self._session, name, param, kind=kind, what=what)

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        return await self._retry.run(operation, on_retry=self._count_retry)

    def _count_retry(self, error: Transient, delay: float) -> None:
        self._counters.retries += 1


@asynccontextmanager
async def open_ctera_backend(
    url: str,
    user: str,
    password: str,
    *,
    admin: bool = False,
    ca_file: str | FilePath | None = None,
    insecure: bool = False,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    retry: RetryPolicy | None = None,
    max_overread: int = DEFAULT_MAX_OVERREAD,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[CteraBackend]:
    """A logged-in :class:`CteraBackend` for the portal at ``url`` (``https://host[:port]``).

    ``admin`` selects the global administration context (``/admin``) instead
    of the end-user one (``/ServicesPortal``).  ``ca_file`` trusts exactly the
    CAs in that PEM file instead of the system's; ``insecure`` disables
    certificate verification (logged loudly).  ``transport`` replaces the
    network (tests inject faults with it); TLS options then do not apply.

    Raises, on entry: AuthenticationFailed (wrong user or password),
    Unreachable (refused, unresolvable, TLS verification failed, timed out),
    Transient or ProtocolError.  On exit it logs out and closes connections.
    """
    base_url = _base_url(url)
    tls = ssl_context(ca_file=ca_file, insecure=insecure) if transport is None else None
    client = make_client(base_url, tls=tls, timeouts=timeouts, transport=transport)
    bulk = bulk_transport_for(base_url, tls, timeouts) if tls is not None else None
    backend = CteraBackend(
        client, user=user, password=password, admin=admin, retry=retry, max_overread=max_overread,
        task_timeout=timeouts.task, bulk=bulk,
    )
    try:
        await backend.login()
        yield backend
    finally:
        await backend.aclose()


def _base_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``; ValueError for anything that is not one."""
    parts = urllib.parse.urlsplit(url.strip())
    if "@" in parts.netloc:
        # Never echo such a URL: it may hold a password.
        raise ValueError("the portal URL must not contain a user name or password")
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"not a portal URL: {url!r} (expected https://host[:port])")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"give the portal's base URL, like https://{parts.netloc}, not {url!r}")
    if parts.scheme == "http":
        global _plain_http_warned
        if not _plain_http_warned:
            _plain_http_warned = True
            log.warning("connecting to %s over plain HTTP: the password and all content travel unencrypted", url)
    return f"{parts.scheme}://{parts.netloc}"
