"""What the client has done so far: request counts by kind, bytes moved, retries, tasks.

Tests use these to assert behaviour that is invisible in results ("``ls -l``
of a large folder sent listing pages only", "reading a cached file
downloaded 0 content bytes"); the daemon exposes them for operators.

``statistics()`` returns an immutable snapshot (trio's convention), so a
caller can take one before and one after an action and compare.  Counting
is cheap and lock-free: everything runs on the one trio thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

__all__ = ["Counters", "CteraStatistics", "RequestKind"]


class RequestKind:
    """Names of the request kinds counted in :attr:`CteraStatistics.requests`."""

    LOGIN = "login"
    LOGOUT = "logout"
    STAT = "stat"  # fetchResources depth 0
    LIST = "list"  # fetchResources depth 1, one per page
    SNAPSHOTS = "snapshots"  # listSnapshots
    READ = "read"  # GET {ctx}/webdav/...
    ARCHIVE = "archive"  # POST {ctx}/folders/folders/<uid>: several files as one ZIP
    QUOTA = "quota"  # PROPFIND
    UPLOAD = "upload"  # POST {ctx}/upload/folders/<uid>, one per attempt
    PUT = "put"  # PUT {ctx}/webdav/...: an upload begun while the file was still being written
    MKDIR = "mkdir"  # makeCollection
    MOVE = "move"  # moveResources (submissions, conflict resubmissions included)
    COPY = "copy"  # copyResources
    DELETE = "delete"  # deleteResources
    UNDELETE = "undelete"  # restoreResources
    LIST_DELETED = "list_deleted"  # fetchResources depth 1 with includeDeleted, one per page
    TASK_STATUS = "task_status"  # getTaskStatus / GET .../bgTasks/<n>, one per poll


@dataclass(frozen=True)
class CteraStatistics:
    """A snapshot of a :class:`~vfs.backends.ctera.client.CteraBackend`'s counters.

    ``requests`` counts HTTP requests sent, by :class:`RequestKind` (retries
    and the repeat after a re-login included); ``content_bytes`` is file
    content received by reads (including bytes discarded when a server ignored
    ``Range``, and whole ZIP replies, headers included); ``bytes_received`` is
    every response body.  ``upload_bytes`` is file content handed to the
    network by uploads (every attempt, so a retried upload counts twice);
    ``tasks`` counts background tasks submitted and ``task_polls`` the status
    requests spent waiting for them.
    """

    requests: Mapping[str, int] = field(default_factory=dict)
    content_bytes: int = 0
    bytes_received: int = 0
    retries: int = 0
    relogins: int = 0
    stale_versions: int = 0
    ranges_ignored: int = 0
    rejected_entries: int = 0
    upload_bytes: int = 0
    tasks: int = 0
    task_polls: int = 0

    def count(self, kind: str) -> int:
        return self.requests.get(kind, 0)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


@dataclass
class Counters:
    """The live, mutable counters behind :class:`CteraStatistics`."""

    requests: Counter[str] = field(default_factory=Counter)
    content_bytes: int = 0
    bytes_received: int = 0
    retries: int = 0
    relogins: int = 0
    stale_versions: int = 0
    ranges_ignored: int = 0
    rejected_entries: int = 0
    upload_bytes: int = 0
    tasks: int = 0
    task_polls: int = 0

    def snapshot(self) -> CteraStatistics:
        """Freeze the counters (derived from the fields, so a new counter needs no edit here)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["requests"] = MappingProxyType(dict(self.requests))
        return CteraStatistics(**values)
