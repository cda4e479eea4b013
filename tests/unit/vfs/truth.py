"""What the portal itself says, asked with plain httpx: the truth ``Filesystem`` is checked against.

None of this goes through ``vfs``: downloads are whole-file WebDAV ``GET``s,
folder contents come from WebDAV ``PROPFIND`` (depth 1), renames are the
``moveResources`` task the vendor SDK submits, new versions are the
multipart upload of spec §4.6.  These calls are synchronous (httpx.Client);
trio tests run them with :func:`in_thread` so the event loop under test
keeps running while the portal is asked.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import trio

from tests.support import portal_http
from tests.support.portal_process import PortalProcess
from tests.support.portal_view import PortalView

T = TypeVar("T")

DAV = "{DAV:}"
_PROPFIND = b"""<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getcontentlength/></d:prop></d:propfind>"""


async def in_thread(function: Callable[..., T], *args: object) -> T:
    """Run a blocking portal call off the trio thread."""
    return await trio.to_thread.run_sync(lambda: function(*args))


async def portal_holds(view: PortalView, path: str, data: bytes) -> None:
    """Wait until the portal serves exactly ``data`` at ``path``."""
    await in_thread(view.wait_for, lambda: view.exists(path) and view.read(path) == data)


def mine(path: str) -> str:
    """A path relative to the mount root as a namespace path (``My Files/…``)."""
    return f"My Files/{path}" if path else "My Files"


def download(portal: PortalProcess, path: str, user: str = "alice") -> bytes:
    """The whole current content of ``path`` (relative to ``My Files``)."""
    with portal_http.logged_in(portal, user) as http:
        reply = http.get(portal_http.webdav_url(mine(path)))
        assert reply.status_code == 200, reply.text
        return reply.content


@dataclass(frozen=True)
class Child:
    name: str
    is_dir: bool
    size: int


def propfind(portal: PortalProcess, path: str, user: str = "alice") -> list[Child]:
    """The children of the folder ``path`` as WebDAV ``PROPFIND`` depth 1 lists them."""
    with portal_http.logged_in(portal, user) as http:
        url = portal_http.webdav_url(mine(path)).rstrip("/") + "/"
        reply = http.request("PROPFIND", url, content=_PROPFIND,
                             headers={"depth": "1", "content-type": "application/xml"})
        assert reply.status_code == 207, reply.text
    own = urllib.parse.unquote(url).rstrip("/")
    children = []
    for response in ET.fromstring(reply.content).iter(f"{DAV}response"):
        href = urllib.parse.unquote(urllib.parse.urlsplit(response.findtext(f"{DAV}href") or "").path).rstrip("/")
        if href == own:
            continue
        prop = response.find(f"{DAV}propstat/{DAV}prop")
        assert prop is not None
        is_dir = prop.find(f"{DAV}resourcetype/{DAV}collection") is not None
        size = int(prop.findtext(f"{DAV}getcontentlength") or 0)
        children.append(Child(href.rsplit("/", 1)[-1], is_dir, 0 if is_dir else size))
    return children


def upload(portal: PortalProcess, path: str, content: bytes, user: str = "alice") -> None:
    """A new file or a new version of ``path``, uploaded as the SDK does (spec §4.6)."""
    with portal_http.logged_in(portal, user) as http:
        portal_http.put(http, portal, mine(path), content)


def rename(portal: PortalProcess, path: str, new_name: str, user: str = "alice") -> None:
    """Rename ``path`` within its folder with the ``moveResources`` task (as ``files.rename`` does)."""
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    source = portal_http.href(mine(path))
    destination = portal_http.href(mine(f"{parent}/{new_name}" if parent else new_name))
    with portal_http.logged_in(portal, user) as http:
        status = portal_http.run_task(http, "moveResources", portal_http.resource_pairs((source, destination)))
    assert status.get("status") == "completed", status


def mkdir(portal: PortalProcess, path: str, user: str = "alice") -> None:
    """A new folder ``path`` (its parent must exist), with ``makeCollection``."""
    parent, _, name = path.rpartition("/")
    with portal_http.logged_in(portal, user) as http:
        assert portal_http.mkdir(http, mine(parent), name) == "Ok"


_QUOTA_PROPFIND = b"""<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:quota-used-bytes/><d:quota-available-bytes/></d:prop></d:propfind>"""


def quota(portal: PortalProcess, user: str = "alice") -> tuple[int, int]:
    """``(used, available)`` bytes as WebDAV reports them on ``My Files`` (RFC 4331)."""
    with portal_http.logged_in(portal, user) as http:
        reply = http.request("PROPFIND", portal_http.webdav_url("My Files/"), content=_QUOTA_PROPFIND,
                             headers={"depth": "0", "content-type": "application/xml"})
        assert reply.status_code == 207, reply.text
    prop = ET.fromstring(reply.content).find(f"{DAV}response/{DAV}propstat/{DAV}prop")
    assert prop is not None
    return int(prop.findtext(f"{DAV}quota-used-bytes") or -1), int(prop.findtext(f"{DAV}quota-available-bytes") or -1)


def remove(portal: PortalProcess, path: str, user: str = "alice") -> None:
    """Delete ``path`` (to the recycle bin) with the ``deleteResources`` task."""
    with portal_http.logged_in(portal, user) as http:
        param = portal_http.resource_pairs((portal_http.href(mine(path)), None))
        status = portal_http.run_task(http, "deleteResources", param)
    assert status.get("status") == "completed", status
