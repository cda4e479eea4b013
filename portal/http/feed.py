"""The change feed: ``POST {ctx}/v2/api/metadata/list|longpoll|ancestors`` (spec §6).

JSON in, JSON out, on the caller's cookie session.  The events come from the
store's change log (:mod:`portal.store.changes`); this module chooses which
cloud folders a caller may follow, turns log rows into events, and holds long
polls.

* **Scope.** An end user follows the cloud folders they own, an administrator
  every cloud folder.  ``folder_ids`` empty means all of those; naming one
  outside them is 403; more than :data:`MAX_FOLDERS` is the 400 the vendor
  SDK recognises (``size must be between 1 and 100``).
* **Cursor.** Opaque to clients.  A null cursor replays the current state of
  every live item (by id, in pages) and then continues from the log position
  taken when the replay began, so nothing that happens during a replay is
  missed (it may be delivered twice: delivery is at least once).
* **Events** carry only the keys the SDK accepts (it passes every key as a
  keyword argument): ``gvsn`` is the seq of the item's latest change,
  ``modified`` when the portal logged it, ``file_timestamp`` the item's own
  mtime; ``guid`` is derived from the ``fileId``, so both name the same item.
* **Long poll.** Held until a change lands in the followed folders or
  ``timeout`` milliseconds pass: store changes wake every waiting poll
  (:class:`ChangeHub`), and each re-checks the log for its own folders.
* **Ancestors** of an item currently in ``folder_id`` (live or in the recycle
  bin): the cloud folder first, the item itself last; joined, their names are
  the item's path from the cloud folder.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

import trio

from portal.http.asgi import Request, Response
from portal.http.namespace import Namespace
from portal.store import Store
from portal.store import changes as _changes
from portal.store.changes import Change
from wire.ctera_xml import format_timestamp

MAX_FOLDERS = 100
DEFAULT_RESULTS, MAX_RESULTS = 2000, 10_000
#: Milliseconds (the SDK's default is 10 s); longer polls are shortened to this.
DEFAULT_TIMEOUT, MAX_TIMEOUT = 10_000, 300_000
MAX_BODY = 1 << 20
#: The tenant's id (this portal has one tenant; background tasks call it ``portalUid`` 1).
TENANT_ID = "1"


class FeedError(Exception):
    """A refusal, answered as JSON ``{"details": [{"error": …}]}`` (the shape the SDK reads)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode("utf-8"), content_type="application/json")


async def handle(store: Store, namespace: Namespace, request: Request, rest: list[str]) -> Response:
    """One ``{ctx}/v2/api/<rest>`` request of an authenticated caller."""
    try:
        if rest[:1] != ["metadata"] or len(rest) != 2 or rest[1] not in _CALLS:
            raise FeedError(404, f"no such API: /v2/api/{'/'.join(rest)}")
        if request.method != "POST":
            raise FeedError(405, "POST only")
        try:
            body = json.loads(await request.body(MAX_BODY) or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise FeedError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise FeedError(400, "the body must be a JSON object")
        return json_response(await _CALLS[rest[1]](store, namespace, body))
    except FeedError as exc:
        return json_response({"error": exc.message, "details": [{"error": exc.message}]}, exc.status)


# ------------------------------------------------------------------ cursor


@dataclass(frozen=True)
class Cursor:
    """Where a client is: changes after ``seq`` are still due; during a replay,
    ``replay_after`` is the last item id already delivered."""

    seq: int
    replay_after: int | None = None

    def encode(self) -> str:
        text = f"1:{self.seq}:{'' if self.replay_after is None else self.replay_after}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: Any) -> Cursor | None:
        if value is None:
            return None
        try:
            if not isinstance(value, str):
                raise ValueError
            text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            version, seq, replay = text.split(":")
            if version != "1":
                raise ValueError
            return cls(int(seq), int(replay) if replay else None)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise FeedError(400, f"invalid cursor {str(value)[:100]!r}") from None


# ------------------------------------------------------------------ events


def guid_of(item_id: int) -> str:
    return str(uuid.UUID(int=item_id))


def item_of(guid: Any) -> int:
    try:
        item_id = uuid.UUID(str(guid)).int
    except ValueError:
        raise FeedError(404, f"no object {str(guid)[:100]!r}") from None
    if not 0 < item_id < 1 << 63:
        raise FeedError(404, f"no object {guid!r}")
    return item_id


def event(change: Change) -> dict[str, Any]:
    """The JSON event of one change, with only keys the SDK's ``Event`` accepts."""
    return {
        "type": "folder" if change.is_folder else "file",
        "guid": guid_of(change.item_id),
        "deleted": change.deleted,
        "name": change.name,
        "folder_id": change.cloud_folder_id,
        "modified": format_timestamp(change.logged_at),
        "file_timestamp": format_timestamp(change.mtime),
        "size": 0 if change.is_folder else change.size,
        "id": change.item_id,
        "gvsn": str(change.seq),
        "parent_guid": guid_of(change.parent_id) if change.parent_id is not None else None,
        "virtual_portal_id": TENANT_ID,
    }


# ------------------------------------------------------------------- calls


def _followed(store: Store, namespace: Namespace, body: dict[str, Any]) -> list[int]:
    """The cloud folders a request follows, checked against what the caller may see."""
    wanted = body.get("folder_ids") or []
    if not isinstance(wanted, list):
        raise FeedError(400, "folder_ids must be a list")
    if len(wanted) > MAX_FOLDERS:
        raise FeedError(400, f"folderIds: size must be between 1 and {MAX_FOLDERS}")
    if any(isinstance(f, bool) or not isinstance(f, int) for f in wanted):
        raise FeedError(400, "folder_ids must be integers")
    folders = store.all_cloud_folders() if namespace.is_admin_view else store.cloud_folders(namespace.user.id)
    visible = sorted(folder.id for folder in folders)
    if not wanted:
        return visible
    hidden = [f for f in wanted if f not in visible]
    if hidden:
        raise FeedError(403, f"cloud folder {hidden[0]} is not yours to follow")
    return sorted(set(wanted))


def _bounded(body: dict[str, Any], key: str, default: int, top: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FeedError(400, f"{key} must be a non-negative integer")
    return min(value, top)


async def _list(store: Store, namespace: Namespace, body: dict[str, Any]) -> dict[str, Any]:
    folders = _followed(store, namespace, body)
    limit = max(1, _bounded(body, "max_results", DEFAULT_RESULTS, MAX_RESULTS))
    cursor = Cursor.decode(body.get("cursor")) or Cursor(_changes.latest_seq(store.db), replay_after=0)
    if cursor.replay_after is not None:
        rows = _changes.live_items(store.db, cursor.replay_after, folders, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        following = Cursor(cursor.seq, rows[-1].item_id) if more else Cursor(cursor.seq)
    else:
        rows = _changes.since(store.db, cursor.seq, folders, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        # Read to the end: no change in these folders lies between here and the
        # log's end, so the cursor may skip ahead (the next poll scans less).
        following = Cursor(rows[-1].seq) if more else Cursor(max(cursor.seq, _changes.latest_seq(store.db)))
    return {"cursor": following.encode(), "has_more": more, "entries": [event(row) for row in rows]}


async def _longpoll(store: Store, namespace: Namespace, body: dict[str, Any]) -> dict[str, Any]:
    folders = _followed(store, namespace, body)
    timeout = _bounded(body, "timeout", DEFAULT_TIMEOUT, MAX_TIMEOUT)
    cursor = Cursor.decode(body.get("cursor"))

    def due() -> bool:
        if cursor is None or cursor.replay_after is not None:
            return True  # a replay is pending: list now
        return _changes.any_since(store.db, cursor.seq, folders)

    hub = hub_for(store)
    with trio.move_on_after(timeout / 1000):
        while not due():
            # No await between the check and the wait: no change can slip in between.
            await hub.wait()
    return {"changes": due()}


async def _ancestors(store: Store, namespace: Namespace, body: dict[str, Any]) -> list[dict[str, Any]]:
    folder_id = body.get("folder_id")
    if isinstance(folder_id, bool) or not isinstance(folder_id, int):
        raise FeedError(400, "folder_id must be an integer")
    _followed(store, namespace, {"folder_ids": [folder_id]})
    item_id = item_of(body.get("guid"))
    chain: list[dict[str, Any]] = []
    next_id: int | None = item_id
    while next_id is not None:
        state = _changes.current(store.db, next_id)
        if state is None or state.cloud_folder_id != folder_id:
            raise FeedError(404, f"no object {body.get('guid')!r} in cloud folder {folder_id}")
        chain.append(event(state))
        next_id = state.parent_id
    return chain[::-1]


_CALLS = {"list": _list, "longpoll": _longpoll, "ancestors": _ancestors}


# -------------------------------------------------------------- wake-ups


class ChangeHub:
    """Wakes every waiting long poll after any store change.

    One event per generation: a change sets the current event and starts a
    new one, so a poll that wakes and finds nothing for its folders waits on
    the next change, never on a stale set event.
    """

    def __init__(self) -> None:
        self._event = trio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


_hubs: weakref.WeakKeyDictionary[Store, ChangeHub] = weakref.WeakKeyDictionary()


def hub_for(store: Store) -> ChangeHub:
    """The store's hub, made (and subscribed to the store's changes) on first use."""
    hub = _hubs.get(store)
    if hub is None:
        hub = _hubs[store] = ChangeHub()
        store.change_listeners.append(hub.notify)
    return hub

