"""Changes to the tree: mkdir, move/rename, copy, delete, the recycle bin (spec §4.7, §4.8, §5.3).

==========================  =====================================================
backend call                wire
==========================  =====================================================
``make_folder(path)``       ``makeCollection {name (raw), parentPath (href)}``
``move(src, dst)``          ``moveResources`` with one ``SrcDstParam``, then poll
``copy(src, dst)``          ``copyResources`` likewise
``delete(path)``            ``deleteResources`` (``dest`` null), then poll
``list_deleted(path)``      ``fetchResources`` depth 1 with ``includeDeleted``
``undelete(path)``          ``restoreResources`` with ``src`` = the deleted item
==========================  =====================================================

``dest`` is always the full target path, so a rename and a move are the same
call.  Replacing: a move or copy onto a taken name fails its task with
``errorType=Conflict`` and a cursor; with ``replace`` the same ``urls`` are
resubmitted with ``startFrom`` = that cursor plus the resolution "Override
all" (``fileMoveConflictResolutaion``, the wire's spelling), and the
occupant goes to the recycle bin.  Deciding *whether* POSIX allows the
replacement (file onto folder, non-empty folder) is the filesystem's job.

Requests that may have taken effect although their reply was lost
(:attr:`~vfs.backends.ctera.tasks.Submission.ambiguous`) are sent again, and
the second outcome is read in that light: a second delete that finds nothing
to delete, a second move whose source is gone and whose target exists, a
second mkdir that finds the folder, a second undelete that finds the item
back are the first one's success.  A second copy that finds its target
taken cannot tell whose copy that is, and says so (Transient).

Everything that changes where folders are makes the upload uid cache forget
the subtrees involved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from vfs.backends.base import (
    BackendError,
    Exists,
    NotADirectory,
    NotFound,
    Path,
    PermissionDenied,
    ProtocolError,
    ReadOnly,
    RemoteEntry,
    Transient,
    Unreachable,
)
from vfs.backends.ctera.cloud_folders import Describe, FolderUids
from vfs.backends.ctera.counters import Counters, RequestKind
from vfs.backends.ctera.errors import error_for_code, task_error
from vfs.backends.ctera.execute import execute
from vfs.backends.ctera.paths import check_new_name, href_of
from vfs.backends.ctera.resources import child_entries, decode_fetch_reply, write_refusal
from vfs.backends.ctera.session import Session
from vfs.backends.ctera.tasks import TaskOutcome, TaskRunner
from vfs.backends.ctera.uploads import Stat
from vfs.backends.retry import RetryHook, RetryLater, RetryPolicy
from wire import ctera_xml
from wire.ctera_xml import Obj, XmlDecodeError, obj

__all__ = ["Changes"]

log = logging.getLogger(__name__)

#: Items per page when listing the recycle bin (the reference portal's page cap).
DELETED_PAGE = 1000
#: A recycle-bin listing longer than this many pages is a portal going round in circles.
MAX_DELETED_PAGES = 10_000
#: How many times one move/copy resolves a conflict before giving up (each is one more task).
MAX_RESOLUTIONS = 3

#: Called with the entries of a listing page before they are returned (version refinement).
Refine = Callable[[RemoteEntry], RemoteEntry]


class Changes:
    """The tree-changing calls of one session (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        retry: RetryPolicy,
        counters: Counters,
        tasks: TaskRunner,
        uids: FolderUids,
        *,
        describe: Describe,
        stat: Stat,
        refine: Refine,
        on_retry: RetryHook | None = None,
    ) -> None:
        self._session = session
        self._retry = retry
        self._counters = counters
        self._tasks = tasks
        self._uids = uids
        self._describe = describe
        self._stat = stat
        self._refine = refine
        self._on_retry = on_retry

    @property
    def _context(self) -> str:
        return self._session.context

    # -------------------------------------------------------------- mkdir

    async def make_folder(self, path: Path) -> RemoteEntry:
        what = f"mkdir of /{'/'.join(path)}"
        if not path:
            raise Exists(f"{what}: the root exists")
        check_new_name(path[-1], what)
        param = obj(None, name=path[-1], parentPath=href_of(self._context, path[:-1]))
        ambiguous = False

        async def attempt() -> ctera_xml.Value:
            nonlocal ambiguous
            try:
                return await execute(self._session, "makeCollection", param, kind=RequestKind.MKDIR, what=what)
            except Transient as exc:
                ambiguous = ambiguous or not isinstance(exc, (Unreachable, RetryLater))
                raise

        reply = await self._retry.run(attempt, on_retry=self._on_retry)
        if isinstance(reply, (Obj, list)):
            raise ProtocolError(f"{what}: unexpected reply (a {type(reply).__name__})")
        code = (reply or "").strip()
        if code and code.lower() != "ok":
            error = error_for_code(code, what=what)
            if isinstance(error, Exists) and ambiguous:
                entry = await self._stat(path)
                if entry.is_dir:
                    return entry  # made by the attempt whose reply was lost
            if isinstance(error, PermissionDenied):
                error = await self._diagnose(path[:-1], error, what)
            raise error
        return await self._stat(path)

    async def _diagnose(self, folder: Path, error: BackendError, what: str) -> BackendError:
        """A portal's PermissionDenied for creating in ``folder`` may be a read-only place (EROFS)."""
        try:
            entry, placement = await self._retry.run(lambda: self._describe(folder), on_retry=self._on_retry)
        except BackendError:
            return error
        refusal = write_refusal(entry, placement, what=what)
        return refusal if isinstance(refusal, (ReadOnly, NotADirectory)) else error

    # -------------------------------------------------------- move, copy

    async def move(self, source: Path, target: Path, *, replace: bool) -> None:
        await self._transfer("moveResources", RequestKind.MOVE, "move", source, target, replace)

    async def copy(self, source: Path, target: Path, *, replace: bool) -> None:
        await self._transfer("copyResources", RequestKind.COPY, "copy", source, target, replace)

    async def _transfer(self, method: str, kind: str, verb: str, source: Path, target: Path, replace: bool) -> None:
        what = f"{verb} of /{'/'.join(source)} to /{'/'.join(target)}"
        if not source or not target:
            raise PermissionDenied(f"{what}: the root cannot be moved, copied or replaced")
        check_new_name(target[-1], what)
        urls = [obj("SrcDstParam", src=href_of(self._context, source), dest=href_of(self._context, target))]
        try:
            outcome, ambiguous = await self._tasks.run(
                method, obj("ActionResourcesParam", urls=urls, startFrom=None), kind=kind, what=what
            )
            resolutions = 0
            while replace and outcome.error_type == "Conflict" and resolutions < MAX_RESOLUTIONS:
                resolutions += 1
                start_from = _override_all(outcome, what)
                outcome, again = await self._tasks.run(
                    method, obj("ActionResourcesParam", urls=urls, startFrom=start_from), kind=kind, what=what
                )
                ambiguous = ambiguous or again
        finally:
            if verb == "move":
                self._uids.forget(source)
            self._uids.forget(target)
        error = task_error(outcome.status, outcome.error_type, outcome.progstring, what=what)
        if error is None:
            return
        if ambiguous:
            if verb == "move" and isinstance(error, NotFound) and await self._moved(source, target):
                return
            if verb == "copy" and isinstance(error, Exists):
                raise Transient(f"{what}: the reply to the first request was lost and the target is now taken;"
                                " it may be the copy") from error
        raise error

    async def _moved(self, source: Path, target: Path) -> bool:
        """Whether the state says a move happened: the source is gone and the target exists."""
        return not await self._exists(source) and await self._exists(target)

    # ------------------------------------------------------------ delete

    async def delete(self, path: Path) -> None:
        what = f"delete of /{'/'.join(path)}"
        if not path:
            raise PermissionDenied(f"{what}: the root cannot be deleted")
        urls = [obj("SrcDstParam", src=href_of(self._context, path), dest=None)]
        try:
            outcome, ambiguous = await self._tasks.run(
                "deleteResources", obj("ActionResourcesParam", urls=urls, startFrom=None),
                kind=RequestKind.DELETE, what=what,
            )
        finally:
            self._uids.forget(path)
        error = task_error(outcome.status, outcome.error_type, outcome.progstring, what=what)
        if error is None or (ambiguous and isinstance(error, NotFound)):
            return  # a second delete finding nothing: the first one did it
        raise error

    # ------------------------------------------------------ recycle bin

    async def list_deleted(self, path: Path) -> list[RemoteEntry]:
        """Every deleted child of ``path``, one per name (the one the portal lists last)."""
        found: dict[str, RemoteEntry] = {}
        start = 0
        for _ in range(MAX_DELETED_PAGES):
            page, count, more = await self._retry.run(
                lambda start=start: self._deleted_page(path, start), on_retry=self._on_retry
            )
            for entry in page:
                found.pop(entry.name, None)
                found[entry.name] = entry
            if not more or count == 0:
                return list(found.values())
            start += count
        raise ProtocolError(f"recycle bin of /{'/'.join(path)}: more than {MAX_DELETED_PAGES} pages")

    async def _deleted_page(self, path: Path, start: int) -> tuple[list[RemoteEntry], int, bool]:
        """One page: the deleted entries on it, how many items it had, whether more follow."""
        href = href_of(self._context, path)
        what = f"recycle bin of /{'/'.join(path)} from {start}"
        param = obj(
            "FetchResourcesParam", start=start, limit=DELETED_PAGE, root=href, depth=1, includeDeleted=True
        )
        value = await execute(self._session, "fetchResources", param, kind=RequestKind.LIST_DELETED, what=what)
        reply = decode_fetch_reply(value, what=what)
        if reply.error_type is not None:
            raise error_for_code(reply.error_type, what=what)
        if reply.root is None:
            raise NotFound(f"{what}: no such folder")
        try:
            is_folder = ctera_xml.as_bool(reply.root.get("isFolder"))
        except XmlDecodeError as exc:
            raise ProtocolError(f"{what}: undecodable folder ({exc})") from None
        if is_folder is False:
            raise NotADirectory(f"{what}: not a folder")
        entries = [self._refine(e) for e in child_entries(reply, path, self._context, only_deleted=True)]
        return entries, len(reply.items), reply.has_more

    async def undelete(self, path: Path) -> None:
        what = f"undelete of /{'/'.join(path)}"
        if not path:
            raise NotFound(f"{what}: the root is never deleted")
        urls = [obj("SrcDstParam", src=href_of(self._context, path), dest=None)]
        outcome, ambiguous = await self._tasks.run(
            "restoreResources", obj("ActionResourcesParam", urls=urls, startFrom=None),
            kind=RequestKind.UNDELETE, what=what,
        )
        self._uids.forget(path)
        error = task_error(outcome.status, outcome.error_type, outcome.progstring, what=what)
        if error is None:
            return
        if ambiguous and isinstance(error, NotFound) and await self._exists(path):
            return  # the first restore brought it back
        raise error

    # ----------------------------------------------------------- helpers

    async def _exists(self, path: Path) -> bool:
        try:
            await self._stat(path)
        except NotFound:
            return False
        return True


def _override_all(outcome: TaskOutcome, what: str) -> Obj:
    """The conflict cursor with "Override every remaining conflict" set (spec §5.3)."""
    if outcome.cursor is None:
        raise ProtocolError(f"{what}: the portal reported a conflict without a cursor to resume from")
    resolution = obj("FileMoveConflictResolutaion", errorType="Conflict", handler="Override")
    return Obj(outcome.cursor.class_name, {**outcome.cursor.fields, "fileMoveConflictResolutaion": [resolution]})
