"""What the filesystem needs from a portal: the ``Backend`` protocol and its vocabulary.

A backend speaks one portal API and hides its wire details: paths are tuples
of names from the backend's root (never encoded), times are POSIX seconds,
errors are :class:`BackendError` subclasses.  The filesystem above it decides
every POSIX semantic; a backend only reports what the portal said.

Error tree (the filesystem maps each to one errno, in ``vfs.errors``)::

    BackendError
    ├── NotFound            the path does not exist (ENOENT)
    ├── NotADirectory       a folder was expected (ENOTDIR)
    ├── IsADirectory        a file was expected (EISDIR)
    ├── Exists              the name is taken (EEXIST)
    ├── PermissionDenied    the portal refuses this user (EACCES)
    ├── ReadOnly            the location cannot be written (EROFS)
    ├── QuotaExceeded       (EDQUOT)
    ├── InvalidName         the portal refuses the name (EINVAL)
    │   └── NameTooLong     longer than a name may be (ENAMETOOLONG)
    ├── StaleVersion        the file changed remotely since it was described (ESTALE)
    ├── ProtocolError       the portal's reply made no sense (EIO; logged)
    ├── AuthenticationFailed  login refused: wrong user or password (EACCES)
    ├── Unsupported         the portal does not offer this request (ENOTSUP)
    └── Transient           worth retrying: timeouts, resets, 5xx (EIO / ETIMEDOUT)
        └── Unreachable     the portal cannot be reached at all
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

Path = tuple[str, ...]


class BackendError(Exception):
    """A portal operation failed; the subclass says how."""


class NotFound(BackendError):
    pass


class NotADirectory(BackendError):
    pass


class IsADirectory(BackendError):
    pass


class Exists(BackendError):
    pass


class PermissionDenied(BackendError):
    pass


class ReadOnly(BackendError):
    pass


class QuotaExceeded(BackendError):
    pass


class InvalidName(BackendError):
    pass


class NameTooLong(InvalidName):
    pass


class StaleVersion(BackendError):
    """The remote content is no longer the version the caller holds."""


class ProtocolError(BackendError):
    """The portal answered something this client cannot make sense of."""


class AuthenticationFailed(BackendError):
    pass


class Unsupported(BackendError):
    """The portal does not offer this request at all (an optional capability)."""


class Transient(BackendError):
    """A failure that may go away: a timeout, a reset, a 5xx.  Retried before it is raised."""


class Unreachable(Transient):
    """The portal cannot be reached (refused, DNS, TLS handshake)."""


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """One item as the portal describes it.

    ``version`` is an opaque validator that changes whenever the content does
    (the portal's ETag where it has one; otherwise built from ``file_id``,
    ``size`` and ``mtime``).  Cached content is keyed by (``object_id``,
    ``version``), never by path.
    """

    path: Path
    is_dir: bool
    size: int
    mtime: float
    object_id: str
    version: str
    readable: bool = True
    writable: bool = True
    deleted: bool = False

    @property
    def name(self) -> str:
        return self.path[-1] if self.path else ""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a folder listing.

    ``next_start`` is where the next page starts; it may exceed ``start +
    len(entries)`` when the backend skipped entries it refused (hostile
    names).  None means ``start + len(entries)``.
    """

    entries: Sequence[RemoteEntry]
    has_more: bool
    next_start: int | None = None


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """A point in time at which ``path`` existed, and where to find it then.

    ``path`` is the object's own path inside that snapshot (list or read it
    like any path); ``taken_at`` is POSIX seconds, UTC.
    """

    taken_at: float
    path: Path
    current: bool = False


@dataclass(frozen=True, slots=True)
class Quota:
    used: int
    available: int | None  # None: unlimited or unknown


class Backend(Protocol):
    """One portal API.  Every method has a bounded duration (timeouts + bounded retries)."""

    async def stat(self, path: Path) -> RemoteEntry:
        """Describe one item.  NotFound if it does not exist."""
        ...

    async def list_page(self, path: Path, start: int, limit: int) -> Page:
        """Children of the folder at ``path`` from position ``start``.  NotADirectory, NotFound."""
        ...

    async def read(self, entry: RemoteEntry, offset: int, length: int) -> bytes:
        """``length`` bytes of ``entry``'s content from ``offset`` (fewer only at the end).

        Raises StaleVersion if the portal now holds other content than
        ``entry.version`` describes.
        """
        ...

    async def read_together(self, entries: Sequence[RemoteEntry]) -> dict[str, bytes]:
        """The whole content of several files of one folder at once, by ``object_id``.

        For folders of many small files, where a request per file costs more
        than its bytes.  ``entries`` are files of one folder (ValueError
        otherwise); the caller keeps their total size small, as the answer is
        held in memory.  Any entry may be absent from the answer, to be read
        with :meth:`read`; a backend that cannot read files together returns
        ``{}``.  What is returned is the content of ``entry.version`` as far as
        the backend can check it.  A failure of the request as a whole is
        raised (NotFound when one of the files vanished, PermissionDenied,
        Transient…), and the caller reads the files one by one.
        """
        ...

    async def list_snapshots(self, path: Path) -> list[SnapshotRef]:
        """The snapshots in which ``path`` existed, oldest first ([] when the portal has none)."""
        ...

    async def quota(self) -> Quota | None:
        """Usage and quota of the logged-in user, or None when the portal does not say."""
        ...

    async def aclose(self) -> None:
        """Log out and release connections."""
        ...


#: Content to upload: called once per attempt, each call yields the whole content
#: again from the start (so a retried upload can resend it).
UploadSource = Callable[[], AsyncIterator[bytes]]


class WritableBackend(Backend, Protocol):
    """The write half.  Paths name the item itself (not its parent); every
    change is done when the call returns (background tasks are awaited)."""

    def check_name(self, name: str) -> None:
        """Raise InvalidName (NameTooLong) if the portal would refuse ``name`` for a new
        item, so a bad name fails at create time rather than at upload."""
        ...

    async def upload(self, path: Path, source: UploadSource, size: int) -> RemoteEntry:
        """Make ``source`` the content of the file at ``path``: a new version of an
        existing file (its identity unchanged) or a new file.  Returns the file
        as the portal now describes it.  IsADirectory, NotFound (parent),
        QuotaExceeded, InvalidName, ReadOnly, PermissionDenied."""
        ...

    async def make_folder(self, path: Path) -> RemoteEntry:
        """Create a folder.  Exists, NotFound (parent), InvalidName, ReadOnly."""
        ...

    async def move(self, source: Path, target: Path, *, replace: bool = False) -> None:
        """Rename and/or move (the item keeps its identity).  Exists when ``target``
        is taken and not ``replace``; with ``replace`` the occupant goes to the
        recycle bin.  NotFound (source or target's parent)."""
        ...

    async def copy(self, source: Path, target: Path, *, replace: bool = False) -> None:
        """Server-side copy (no content crosses the network).  As :meth:`move`."""
        ...

    async def delete(self, path: Path) -> None:
        """Send a file or a whole folder to the recycle bin.  NotFound."""
        ...

    async def list_deleted(self, path: Path) -> list[RemoteEntry]:
        """The deleted (recoverable) children of the folder at ``path``."""
        ...

    async def undelete(self, path: Path) -> None:
        """Bring back the most recently deleted item at ``path``.  NotFound, Exists."""
        ...


class StreamingUploads(Protocol):
    """Optional: an upload that starts before the content's length is known.

    The portal's own upload needs the size before the first byte, so a file
    can only be sent once it is closed.  A backend offering this can start
    sending a file while it is still being written; the filesystem uses it
    only as a head start, falling back to :meth:`WritableBackend.upload`
    whenever it fails.
    """

    async def upload_streamed(self, path: Path, content: AsyncIterator[bytes], *, new: bool) -> RemoteEntry:
        """Make ``content`` (read once, to its end) the content of the file at ``path``.

        Not retried, since ``content`` cannot be replayed; if ``content``
        raises, the portal must keep nothing of it.  With ``new`` it is
        refused (StaleVersion) if the path exists by the time it arrives.
        Unsupported if the portal offers no such upload.
        """
        ...
