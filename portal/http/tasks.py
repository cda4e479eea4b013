"""Background tasks: ``moveResources``, ``copyResources``, ``deleteResources``,
``restoreResources``, and their polling (``getTaskStatus``, and
``GET /admin/api/servers/<server>/bgTasks/<n>`` for global administrators).

Each submission returns a reference ``servers/MainDB/bgTasks/<n>`` at once and
runs in the portal's nursery; a client polls until the status is terminal.

A name conflict stops the task as ``failed`` with ``errorType=Conflict`` and a
``ResourceActionCursor`` naming the source and destination.  The client
resubmits the same ``urls`` with ``startFrom`` = that cursor plus a resolution
(``skipHandler`` for this conflict, ``fileMoveConflictResolutaion`` — the
wire's spelling — for all that remain): ``Skip``, ``Override`` (the occupant
goes to the recycle bin) or ``Rename`` (keep both).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import trio

from portal.http.asgi import HttpError, href
from portal.http.execute import Call, method
from portal.http.namespace import Namespace, Node
from portal.store import Exists, Item, NotFound, PermissionDenied, StoreError, User
from wire import ctera_xml
from wire.ctera_xml import Obj, as_obj, as_str, format_timestamp, iter_objs, obj

SERVER = "MainDB"
TERMINAL = ("completed", "failed", "completed with warnings", "stopped", "disabled")
_KEEP_TASKS = 10_000


@dataclass
class Task:
    id: int
    name: str
    owner: User
    start_time: float = field(default_factory=time.time)
    end_time: float | None = None
    status: str = "running"
    progstring: str = ""
    error_type: str | None = None
    cursor: Obj | None = None
    total: int = 0
    processed: int = 0

    @property
    def reference(self) -> str:
        return f"servers/{SERVER}/bgTasks/{self.id}"

    def finish(self, status: str, progstring: str = "", error_type: str | None = None, cursor: Obj | None = None) -> None:
        self.status, self.progstring, self.error_type, self.cursor = status, progstring, error_type, cursor
        self.end_time = time.time()

    def encode(self) -> Obj:
        elapsed = int((self.end_time or time.time()) - self.start_time)
        return obj(
            "FileManagerBgTask",
            id=self.id,
            name=self.name,
            startTime=format_timestamp(self.start_time),
            endTime=format_timestamp(self.end_time) if self.end_time else None,
            elapsedTime=elapsed,
            percentage=100 if self.status in TERMINAL else int(100 * self.processed / max(1, self.total)),
            status=self.status,
            progstring=self.progstring,
            portalUid=1,
            userUid=self.owner.id,
            result=None,
            filesProcessed=self.processed,
            bytesProcessed=0,
            totalFiles=self.total,
            totalBytes=0,
            errorType=self.error_type,
            fileInProgress=None,
            cursor=self.cursor,
        )


class TaskBoard:
    """The tasks of this portal run, newest kept; runs them in ``nursery``."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._tasks: OrderedDict[int, Task] = OrderedDict()
        self._ids = itertools.count(1)

    def start(self, name: str, owner: User, work) -> Task:
        task = Task(next(self._ids), name, owner)
        self._tasks[task.id] = task
        while len(self._tasks) > _KEEP_TASKS:
            self._tasks.popitem(last=False)

        async def run() -> None:
            await trio.sleep(0)  # answer the submission before doing the work
            try:
                work(task)
            except Exception as exc:  # a bug must fail the task, not the portal
                task.finish("failed", f"internal error: {exc}")
            if task.status not in TERMINAL:
                task.finish("completed")

        self._nursery.start_soon(run)
        return task

    def find(self, reference: str, user: User) -> Task:
        try:
            task_id = int(reference.rstrip("/").rsplit("/", 1)[-1])
        except ValueError:
            raise HttpError(400, f"not a task reference: {reference!r}") from None
        task = self._tasks.get(task_id)
        if task is None or not (user.is_admin or task.owner.id == user.id):
            raise HttpError(404, "Resource does not exist")
        return task


# ---------------------------------------------------------------- submissions


@dataclass
class _Pair:
    src: list[str]
    dest: list[str] | None
    src_href: str
    dest_href: str | None


def _pairs(call: Call, param: Obj, needs_dest: bool) -> list[_Pair]:
    pairs = []
    for entry in iter_objs(param.get("urls")):
        src_href = as_str(entry.get("src")) or ""
        dest_href = as_str(entry.get("dest"))
        if needs_dest and not dest_href:
            raise HttpError(400, "every resource needs a dest")
        pairs.append(
            _Pair(call.path_of(src_href), call.path_of(dest_href) if dest_href else None, src_href, dest_href)
        )
    if not pairs:
        raise HttpError(400, "no resources given")
    return pairs


@dataclass
class _Resolution:
    """What to do about conflicts, from a resubmission's ``startFrom``."""

    resume_src: str | None = None
    this_one: str | None = None
    all_remaining: str | None = None

    @classmethod
    def parse(cls, start_from: ctera_xml.Value) -> _Resolution:
        cursor = as_obj(start_from)
        if cursor is None:
            return cls()
        source = as_obj(cursor.get("srcResource"))
        everything = None
        for choice in iter_objs(cursor.get("fileMoveConflictResolutaion")):
            everything = as_str(choice.get("handler"))
        return cls(
            resume_src=as_str(source.get("href")) if source else None,
            this_one=as_str(cursor.get("skipHandler")),
            all_remaining=everything,
        )

    def handler_for(self, pair: _Pair, first: bool) -> str | None:
        if first and self.this_one:
            return self.this_one
        return self.all_remaining


def _submit(call: Call, param: ctera_xml.Value, name: str) -> str:
    request = as_obj(param)
    if request is None:
        raise HttpError(400, f"{name} needs a parameter object")
    pairs = _pairs(call, request, needs_dest=name in ("moveResources", "copyResources"))
    resolution = _Resolution.parse(request.get("startFrom"))
    namespace = call.namespace
    board: TaskBoard = call.app.tasks

    def work(task: Task) -> None:
        task.total = len(pairs)
        begin = 0
        if resolution.resume_src is not None:
            wanted = call.path_of(resolution.resume_src)
            begin = next((i for i, p in enumerate(pairs) if p.src == wanted), 0)
        for index in range(begin, len(pairs)):
            pair = pairs[index]
            handler = resolution.handler_for(pair, first=index == begin and resolution.resume_src is not None)
            if not _run_one(namespace, name, pair, handler, task):
                return
            task.processed += 1

    return board.start(name, call.session.user, work).reference


def _run_one(namespace: Namespace, name: str, pair: _Pair, handler: str | None, task: Task) -> bool:
    """Do one (src, dest) pair; on failure record it on ``task`` and return False."""
    store = namespace.store
    parent_href = href(namespace.context, pair.src[:-1])
    try:
        if name == "restoreResources":
            # The folder may be deleted too (the listing showed this item inside
            # it); restoring the item restores the deleted folders above it.
            parent = namespace.resolve(pair.src[:-1], include_deleted=True)
            # Through a share the owner's recycle bin is out of sight: nothing to restore.
            visible = parent.item is not None and parent.share is None and pair.src
            deleted = store.deleted_child(parent.item, pair.src[-1]) if visible else None
            if deleted is None:
                raise NotFound(pair.src_href)
            source_node = None
        else:
            source_node = namespace.resolve(pair.src)
            deleted = None
    except NotFound:
        task.finish("failed", f"Resource, {'/'.join(pair.src)} , doesn't exist.", cursor=_cursor(parent_href, pair))
        return False
    # A copy only reads its source, but through a share only where the share lets content out.
    if source_node is not None and not (source_node.readable if name == "copyResources" else source_node.writable):
        task.finish("failed", "PermissionDenied", "PermissionDenied", _cursor(parent_href, pair))
        return False
    try:
        if name == "deleteResources":
            assert source_node is not None and source_node.item is not None
            store.delete(source_node.item)
        elif name == "restoreResources":
            assert deleted is not None
            _restore(store, deleted, handler)
        else:
            _move_or_copy(namespace, name, pair, source_node, handler)
    except NotFound:
        task.finish("failed", "DestinationNotExists", cursor=_cursor(parent_href, pair))
        return False
    except Exists:
        # A handler resolves conflicts only: "Skip" passes over this item, while
        # items without a conflict are done whatever the handler says.
        if handler == "Skip":
            return True
        task.finish("failed", "Conflict", "Conflict", _cursor(parent_href, pair))
        return False
    except PermissionDenied:
        task.finish("failed", "PermissionDenied", "PermissionDenied", _cursor(parent_href, pair))
        return False
    except StoreError as exc:
        task.finish("failed", str(exc), exc.code, _cursor(parent_href, pair))
        return False
    return True


def _restore(store, deleted: Item, handler: str | None) -> None:
    """Undelete ``deleted``; "Override"/"Rename" matter only if its name is taken now."""
    new_name = None
    if handler == "Rename" and store.child(store.item(deleted.parent_id), deleted.name) is not None:
        new_name = _free_name(store, store.item(deleted.parent_id), deleted.name)
    store.restore(deleted, replace=handler == "Override", new_name=new_name)


def _move_or_copy(namespace: Namespace, name: str, pair: _Pair, source: Node | None, handler: str | None) -> None:
    assert pair.dest and source is not None and source.item is not None
    try:
        parent = namespace.resolve(pair.dest[:-1])
    except NotFound:
        raise NotFound("destination folder") from None
    if not parent.writable or parent.item is None:
        raise PermissionDenied("destination is read-only")
    store = namespace.store
    target = pair.dest[-1]
    occupant = store.child(parent.item, target)
    # Moving an item onto its own name (a change of case) is no conflict to rename around.
    taken = occupant is not None and (name == "copyResources" or occupant.id != source.item.id)
    if handler == "Rename" and taken:
        target = _free_name(store, parent.item, target)
    operation = store.copy if name == "copyResources" else store.move
    operation(source.item, parent.item, target, replace=handler == "Override")


def _free_name(store, parent: Item, name: str) -> str:
    """``name`` with a date suffix (and a counter if needed) that is free in ``parent``."""
    stem, dot, extension = name.rpartition(".")
    if not stem:
        stem, dot, extension = name, "", ""
    stamp = time.strftime("%Y-%m-%d %H%M%S", time.gmtime())
    for attempt in itertools.count(1):
        suffix = f" ({stamp})" if attempt == 1 else f" ({stamp} {attempt})"
        candidate = f"{stem}{suffix}{dot}{extension}"
        if store.child(parent, candidate) is None:
            return candidate
    raise AssertionError("unreachable")


def _cursor(upper_href: str, pair: _Pair) -> Obj:
    return obj(
        "ResourceActionCursor",
        upperLevelUrl=upper_href,
        srcResource=obj("ResourceInfo", href=pair.src_href),
        destResource=obj("ResourceInfo", href=pair.dest_href) if pair.dest_href else None,
        fileMoveConflictResolutaion=None,
        skipHandler=None,
    )


@method("moveResources")
def move_resources(call: Call, param: ctera_xml.Value) -> str:
    return _submit(call, param, "moveResources")


@method("copyResources")
def copy_resources(call: Call, param: ctera_xml.Value) -> str:
    return _submit(call, param, "copyResources")


@method("deleteResources")
def delete_resources(call: Call, param: ctera_xml.Value) -> str:
    return _submit(call, param, "deleteResources")


@method("restoreResources")
def restore_resources(call: Call, param: ctera_xml.Value) -> str:
    return _submit(call, param, "restoreResources")


@method("getTaskStatus")
def get_task_status(call: Call, param: ctera_xml.Value) -> Obj:
    return call.app.tasks.find(as_str(param) or "", call.session.user).encode()
