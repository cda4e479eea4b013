"""The change feed (``/v2/api/metadata``) with the unmodified vendor SDK's
asyncio client, and with raw HTTP where timing or exact JSON matters.

Changes are made through the synchronous SDK (a second client), and what the
feed reports is checked against what ``fetchResources`` says (``fileId``,
names), so neither route can vouch for itself.  Timing assertions are
generous bounds, never measurements of speed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from cterasdk import ServicesPortal
from cterasdk.asynchronous.core.types import Event
from cterasdk.exceptions.notifications import AncestorsError, NotificationsError, TooManyVolumesRequestedError
from cterasdk.exceptions.transport import Forbidden

from tests.support import portal_http as ph
from tests.support.portal_process import PortalProcess
from tests.support.sdk import admin_session, async_admin_session, async_user_session, user_session

pytestmark = pytest.mark.filterwarnings("ignore:In v4, passing bytes will no longer create a file field")

#: The keys the SDK's ``Event`` accepts (spec §6.1); anything else breaks its event loop.
EVENT_KEYS = {"type", "guid", "deleted", "name", "folder_id", "modified", "portal_modified_date", "file_timestamp",
              "size", "id", "acl", "gvsn", "parent_guid", "virtual_portal_id"}


@pytest.fixture
def alice(portal: PortalProcess) -> Iterator[ServicesPortal]:
    with user_session(portal, "alice") as client:
        yield client


def run(coroutine: Any) -> Any:
    """Run the asyncio SDK to completion, in a thread of its own.

    Why a thread: the synchronous SDK keeps its sessions on the main thread's
    default event loop, which ``asyncio.run`` would close; and it can only be
    called from that thread, so changes are always made from the main thread
    while feed calls wait elsewhere.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=120)


def in_background(call: Callable[[], Any]) -> Future:
    """Start a blocking call (a long poll) on another thread; its future."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(call)
    pool.shutdown(wait=False)
    return future


async def read_feed(portal: PortalProcess, cursor: str | None = None, *, user: str = "alice",
                    max_results: int | None = None) -> tuple[list[Event], str, int]:
    """Every event from ``cursor`` on (following ``has_more``), the last cursor, and the page count."""
    events: list[Event] = []
    pages = 0
    async with async_user_session(portal, user) as client:
        while True:
            page = await client.notifications.get(cursor=cursor, max_results=max_results)
            pages += 1
            events += [Event.from_server_object(entry) for entry in page.objects]
            cursor = page.cursor
            if not page.more:
                return events, cursor, pages


def feed_call(http: httpx.Client, call: str, body: dict[str, Any]) -> httpx.Response:
    return http.post(f"/ServicesPortal/v2/api/metadata/{call}", json=body)


def folder_uid(client: ServicesPortal) -> int:
    volume = client.files.properties("My Files").volume
    assert volume is not None
    return volume.id


# ------------------------------------------------------------------- list


def test_null_cursor_replays_the_current_state(portal: PortalProcess, alice: ServicesPortal) -> None:
    alice.files.makedirs("My Files/Docs/Deep")
    alice.files.upload("My Files/Docs/Deep/a.txt", b"hello")
    alice.files.upload("My Files/gone.txt", b"soon deleted")
    alice.files.delete("My Files/gone.txt")

    events, _, _ = run(read_feed(portal))
    by_name = {event.name: event for event in events}
    assert sorted(by_name) == ["Deep", "Docs", "My Files", "a.txt"], "live objects only"
    assert not any(event.deleted for event in events)
    assert [by_name[n].type for n in ("My Files", "Docs", "Deep", "a.txt")] == ["folder", "folder", "folder", "file"]
    assert by_name["My Files"].parent_guid is None
    assert by_name["Docs"].parent_guid == by_name["My Files"].guid
    assert by_name["a.txt"].parent_guid == by_name["Deep"].guid
    assert by_name["a.txt"].size == 5
    assert {event.folder_id for event in events} == {folder_uid(alice)}
    # The second route: the feed's ids are the file browser's ids.
    assert by_name["a.txt"].id == alice.files.properties("My Files/Docs/Deep/a.txt").id
    with user_session(portal, "bob") as bob:
        assert folder_uid(bob) != folder_uid(alice)
    bob_events, _, _ = run(read_feed(portal, user="bob"))
    assert [event.name for event in bob_events] == ["My Files"], "nobody sees another user's folder"


def test_changes_after_a_cursor(portal: PortalProcess, alice: ServicesPortal) -> None:
    alice.files.mkdir("My Files/Docs")
    alice.files.upload("My Files/Docs/a.txt", b"one")
    _, cursor, _ = run(read_feed(portal))

    alice.files.upload("My Files/Docs/a.txt", b"two!")  # a new version
    alice.files.rename("My Files/Docs/a.txt", "b.txt")
    alice.files.mkdir("My Files/Archive")
    alice.files.move("My Files/Docs/b.txt", destination="My Files/Archive")
    alice.files.delete("My Files/Docs")
    alice.files.undelete("My Files/Docs")
    events, cursor_after, _ = run(read_feed(portal, cursor))

    seen = [(event.name, event.type, event.deleted) for event in events]
    assert seen == [
        ("a.txt", "file", False), ("b.txt", "file", False), ("Archive", "folder", False),
        ("b.txt", "file", False), ("Docs", "folder", True), ("Docs", "folder", False),
    ]
    stamps = [int(event.gvsn) for event in events]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert events[0].size == 4
    assert len({events[0].guid, events[1].guid, events[3].guid}) == 1, "one object, renamed and moved"
    assert events[3].parent_guid == events[2].guid
    assert run(read_feed(portal, cursor_after))[0] == [], "a cursor is a position: nothing is repeated"


def test_paging_with_max_results(portal: PortalProcess, alice: ServicesPortal) -> None:
    alice.files.mkdir("My Files/Many")
    for index in range(24):
        alice.files.upload(f"My Files/Many/{index:02}.txt", b"x")
    events, cursor, pages = run(read_feed(portal, max_results=10))
    assert pages == 3
    assert sorted(event.name for event in events if event.type == "file") == [f"{i:02}.txt" for i in range(24)]
    assert len({event.guid for event in events}) == len(events) == 26

    for index in range(15):
        alice.files.upload(f"My Files/Many/{index:02}.txt", b"new version")
    events, _, pages = run(read_feed(portal, cursor, max_results=4))
    assert (len(events), pages) == (15, 4)


def test_events_carry_only_the_keys_the_sdk_accepts(portal: PortalProcess, alice: ServicesPortal) -> None:
    alice.files.upload("My Files/a.txt", b"abc")
    alice.files.delete("My Files/a.txt")
    with ph.logged_in(portal) as http:
        first = feed_call(http, "list", {"folder_ids": [], "cursor": None, "max_results": 100}).json()
        reply = feed_call(http, "list", {"folder_ids": [folder_uid(alice)], "cursor": None})
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.json()["entries"] == first["entries"], "no folder_ids means all of the caller's"
        cursor = first["cursor"]
        alice.files.upload("My Files/b.txt", b"b")
        later = feed_call(http, "list", {"folder_ids": [], "cursor": cursor}).json()
    assert set(first) == {"cursor", "has_more", "entries"} and isinstance(first["cursor"], str)
    for entry in first["entries"] + later["entries"]:
        assert set(entry) <= EVENT_KEYS, set(entry) - EVENT_KEYS
        assert {"type", "guid", "deleted", "name"} <= set(entry)
    assert [entry["name"] for entry in later["entries"]] == ["b.txt"]


def test_refusals(portal: PortalProcess, alice: ServicesPortal) -> None:
    async def check() -> None:
        async with async_user_session(portal) as client:
            with pytest.raises(TooManyVolumesRequestedError):
                await client.notifications.get(cloudfolders=list(range(1, 102)))
            with pytest.raises(NotificationsError):
                await client.notifications.get(cursor="not a cursor")
            with pytest.raises(Forbidden):  # bob's folder is not alice's to follow
                await client.notifications.get(cloudfolders=[bob_folder])

    with user_session(portal, "bob") as bob:
        bob_folder = folder_uid(bob)
    run(check())
    with ph.logged_in(portal) as http:
        reply = feed_call(http, "list", {"folder_ids": list(range(1, 102))})
        assert reply.status_code == 400
        assert "size must be between 1 and 100" in reply.json()["details"][0]["error"]
    with ph.client(portal) as anonymous:
        assert feed_call(anonymous, "list", {}).status_code == 302, "no session: the SDK's login redirect"


def test_administrators_follow_every_folder(portal: PortalProcess, alice: ServicesPortal) -> None:
    alice.files.upload("My Files/alice.txt", b"a")
    with user_session(portal, "bob") as bob:
        bob.files.upload("My Files/bob.txt", b"b")

    async def everything() -> list[Event]:
        async with async_admin_session(portal) as admin:
            page = await admin.notifications.get()
            return [Event.from_server_object(entry) for entry in page.objects]

    events = run(everything())
    assert {"alice.txt", "bob.txt"} <= {event.name for event in events}
    assert len({event.folder_id for event in events}) == 2


def test_move_to_another_cloud_folder_leaves_one_and_enters_the_other(
    portal: PortalProcess, alice: ServicesPortal
) -> None:
    alice.files.makedirs("My Files/Box/Inner")
    alice.files.upload("My Files/Box/Inner/x.txt", b"x")
    _, alice_cursor, _ = run(read_feed(portal))
    _, bob_cursor, _ = run(read_feed(portal, user="bob"))
    with admin_session(portal) as admin:
        admin.files.move("Users/alice/My Files/Box", destination="Users/bob/My Files")
    left, _, _ = run(read_feed(portal, alice_cursor))
    entered, _, _ = run(read_feed(portal, bob_cursor, user="bob"))
    assert [(e.name, e.deleted) for e in left] == [("Box", True), ("Inner", True), ("x.txt", True)]
    assert [(e.name, e.deleted) for e in entered] == [("Box", False), ("Inner", False), ("x.txt", False)]
    assert left[0].parent_guid != entered[0].parent_guid, "each side names its own parent"
    assert [e.guid for e in left] == [e.guid for e in entered], "the same objects"


# -------------------------------------------------------------- ancestors


def test_ancestors_turn_an_event_into_a_path(portal: PortalProcess, alice: ServicesPortal) -> None:
    alice.files.makedirs("My Files/a/b")
    alice.files.upload("My Files/a/b/c.txt", b"c")
    events = {event.name: event for event in run(read_feed(portal))[0]}

    async def ancestors(*wanted: Event) -> list[list[str]]:
        async with async_user_session(portal) as client:
            return [[a.name for a in await client.notifications.ancestors(event)] for event in wanted]

    assert run(ancestors(events["c.txt"], events["My Files"])) == [["My Files", "a", "b", "c.txt"], ["My Files"]]
    # Deleted objects still answer (from the recycle bin), so a deletion event can be placed.
    alice.files.delete("My Files/a")
    assert run(ancestors(events["c.txt"])) == [["My Files", "a", "b", "c.txt"]]
    unknown = Event("file", "00000000-0000-0000-0000-00000000ffff", False, "x", folder_id=events["c.txt"].folder_id)
    with pytest.raises(AncestorsError):
        run(ancestors(unknown))
    with user_session(portal, "bob") as bob:
        bob_folder = folder_uid(bob)
    with pytest.raises(AncestorsError):  # right object, wrong cloud folder
        run(ancestors(Event("file", events["c.txt"].guid, False, "c.txt", folder_id=bob_folder)))


# --------------------------------------------------------------- longpoll


def test_longpoll_waits_for_its_timeout_without_changes(portal: PortalProcess, alice: ServicesPortal) -> None:
    _, cursor, _ = run(read_feed(portal))
    with user_session(portal, "bob") as bob, ph.logged_in(portal) as http:
        started = time.monotonic()
        reply = feed_call(http, "longpoll", {"folder_ids": [], "cursor": cursor, "timeout": 500})
        elapsed = time.monotonic() - started
        assert reply.json() == {"changes": False}
        assert elapsed >= 0.45, elapsed
        # A change in someone else's folder does not end alice's poll.
        poll = in_background(lambda: feed_call(http, "longpoll", {"cursor": cursor, "timeout": 1500}))
        time.sleep(0.2)
        bob.files.upload("My Files/bob.txt", b"b")
        assert poll.result(timeout=60).json() == {"changes": False}

    async def sdk_poll() -> bool:
        async with async_user_session(portal) as client:
            return await client.notifications.changes(cursor, timeout=300)

    assert run(sdk_poll()) is False


def test_longpoll_returns_promptly_after_a_change(portal: PortalProcess, alice: ServicesPortal) -> None:
    _, cursor, _ = run(read_feed(portal))
    with ph.logged_in(portal) as http:
        started = time.monotonic()
        poll = in_background(lambda: feed_call(http, "longpoll", {"folder_ids": [], "cursor": cursor, "timeout": 30_000}))
        time.sleep(0.3)
        assert not poll.done(), "nothing changed yet"
        alice.files.upload("My Files/new.txt", b"new")
        reply = poll.result(timeout=60)
        elapsed = time.monotonic() - started
        assert reply.json() == {"changes": True}
        assert elapsed < 15, elapsed
        # Already pending changes (or a pending replay) answer at once.
        assert feed_call(http, "longpoll", {"cursor": cursor, "timeout": 30_000}).json() == {"changes": True}
        assert feed_call(http, "longpoll", {"cursor": None, "timeout": 30_000}).json() == {"changes": True}


def test_the_sdk_service_loop_delivers_a_change(portal: PortalProcess, alice: ServicesPortal) -> None:
    """The SDK's own loop (list, longpoll, list, save cursor) sees a change made while it runs."""
    saved: list[str] = []
    replayed = threading.Event()

    async def serve() -> list[str]:
        async with async_user_session(portal) as client:
            queue: asyncio.Queue[Event] = asyncio.Queue()

            async def save_cursor(cursor: str) -> None:
                saved.append(cursor)

            client.notifications.service.run(queue, save_cursor)
            names: list[str] = []
            try:
                async with asyncio.timeout(60):
                    while "late.txt" not in names:
                        event = await queue.get()
                        names.append(event.name)
                        queue.task_done()
                        if event.name == "My Files":
                            replayed.set()
            finally:
                await client.notifications.service.stop()
            return names

    service = in_background(lambda: asyncio.run(serve()))
    assert replayed.wait(timeout=60), "the replay never arrived"
    alice.files.upload("My Files/late.txt", b"late")
    names = service.result(timeout=90)
    assert names[0] == "My Files" and names[-1] == "late.txt"
    assert saved, "the service persisted its cursor"
