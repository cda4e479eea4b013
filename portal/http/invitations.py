"""The invitation context (``/invitations``): what a public link opens (spec §2.6).

==============================================  ==========================================
``GET  /invitations/?share=<id>``               opens an anonymous session for that link
``POST /invitations/portalInvitation/share/<id>``  execute: ``getShareDetails``, ``fetchResources``
``GET|HEAD /invitations/webdav/share/<id>/…``   download (files of the shared item only)
``POST /invitations/folders/folders/share/<id>``   ZIP of the shared folder or a selection in it
==============================================  ==========================================

Everything after opening needs the session cookie that opening set, bound to
that one link: a cookie of another link, or none, is 403.  Each request
reads the link again, so a link that expires while a session is open stops
working at once, with a message containing ``no longer valid`` (what the
vendor SDK tests for).  Opening an expired link still succeeds, so a client
can learn why it no longer works.

The session's namespace (:class:`ShareNamespace`) holds exactly one path,
``share/<id>``, which is the shared item; everything else is unreachable by
construction, whatever the spelling.  A shared file's path is
``share/<id>/<its name>`` (``share/<id>`` answers too).  Access
follows the link's mode: ``ReadOnly`` and ``ReadWrite`` list and download,
``PreviewOnly`` lists only, ``UploadOnly`` shows nothing inside; nothing is
writable (uploads through links are not offered).
"""

from __future__ import annotations

import html
import urllib.parse
from typing import TYPE_CHECKING

from portal.http import archive, transfer
from portal.http.asgi import HttpError, Request, Response
from portal.http.execute import Call, execute, method
from portal.http.namespace import ROOT, SHARED, SHARED_CONTAINER, Namespace, Node
from portal.http.sessions import COOKIE, INVITATIONS, Session
from portal.store import NotFound, Store
from portal.store import shares as _shares
from portal.store.shares import Share
from wire import ctera_xml
from wire.ctera_xml import Obj, as_str, obj

if TYPE_CHECKING:
    from portal.http.app import PortalApp

SHARE_DIR = "share"
#: The execute methods an invitation session may call.
METHODS = frozenset({"getShareDetails", "fetchResources"})
NO_LONGER_VALID = "This invitation is no longer valid"


class ShareNamespace(Namespace):
    """The world as one public link shows it: ``share/<id>`` and what lies below."""

    def __init__(self, store: Store, link: Share) -> None:
        super().__init__(store, store.user_by_id(link.owner_id), INVITATIONS)
        self.link = link

    def top(self) -> Node | None:
        """The shared item's node, or None while the item is deleted.

        A shared file's own path is ``share/<id>/<its name>`` (``share/<id>``
        is an alias of it): clients derive names from hrefs, and a file needs
        its name to be saved under it.
        """
        item = self.store.item(self.link.item_id)
        if item.is_deleted:
            return None
        folder = self.store.cloud_folder(item.cloud_folder_id)
        path: tuple[str, ...] = (SHARE_DIR, self.link.invite or "")
        if not item.is_folder:
            path = (*path, item.name)
        return Node(path, SHARED, item=item, cloud_folder=folder, share=self.link)

    def resolve(self, path: list[str] | tuple[str, ...], *, include_deleted: bool = False,
                walked: dict[tuple[str, ...], Node] | None = None) -> Node:
        """As :meth:`Namespace.resolve`; the recycle bin is never reachable through a link."""
        top = self.top()
        if top is not None and top.item is not None and not top.item.is_folder and tuple(path[:2]) == top.path[:2]:
            rest = path[2:]
            if not rest or (len(rest) == 1 and self.store.name_key(rest[0]) == self.store.name_key(top.item.name)):
                return top
            raise NotFound("/".join(path))
        return super().resolve(path, walked=walked)

    def virtual_children(self, parent: Node) -> list[Node]:
        # The container is never listed: a link shows nothing but its own item.
        return [Node((SHARE_DIR,), SHARED_CONTAINER)] if parent.scope == ROOT else []

    def child(self, parent: Node, name: str, *, include_deleted: bool = False) -> Node | None:
        if parent.scope == SHARED_CONTAINER:
            return self.top() if name == self.link.invite else None  # ids compare exactly
        return super().child(parent, name)


async def route(app: PortalApp, request: Request, rest: list[str]) -> Response:
    """Serve ``/invitations/<rest>``."""
    if not rest and request.method in ("GET", "HEAD"):
        return _open(app, request)
    area, tail = (rest[0], rest[1:]) if rest else ("", [])
    if area == "portalInvitation" and tail[:1] == [SHARE_DIR] and len(tail) == 2 and request.method == "POST":
        session, namespace = _session(app, request, tail[1])
        return await execute(lambda: Call(app, request, session, namespace), request, METHODS)
    if area == "webdav" and tail[:1] == [SHARE_DIR] and len(tail) >= 2 and request.method in ("GET", "HEAD"):
        _, namespace = _session(app, request, tail[1])
        return await transfer.download(app.store, namespace, request, tail)
    if area == "folders" and tail[:2] == ["folders", SHARE_DIR] and len(tail) == 3 and request.method == "POST":
        _, namespace = _session(app, request, tail[2])
        return await archive.download_zip(app.store, namespace, request)
    raise HttpError(404, "Resource does not exist")


def _open(app: PortalApp, request: Request) -> Response:
    """``GET /invitations/?share=<id>``: a new anonymous session for the link, and a page."""
    invite = (request.query.get("share") or [""])[0]
    link = _shares.link(app.store, invite) if invite.isalnum() else None
    if link is None:
        raise HttpError(404, "Resource does not exist")
    session = app.sessions.open_anonymous(app.store.user_by_id(link.owner_id), INVITATIONS, invite=invite)
    # Path-scoped, so that opening a link in a browser leaves a portal login alone.
    cookie = f"{COOKIE}={session.id}; Path={INVITATIONS}; Secure; HttpOnly; SameSite=Lax"
    return Response(200, _page(app.store, link), content_type="text/html; charset=utf-8", headers=[("set-cookie", cookie)])


def _page(store: Store, link: Share) -> bytes:
    """A minimal page for people who open the link in a browser."""
    top = ShareNamespace(store, link).top()
    if link.expired() or top is None or top.item is None:
        text = f"<p>{NO_LONGER_VALID}.</p>"
    elif top.item.is_folder or not top.readable:
        text = f"<p>{html.escape(top.item.name)} is shared with you ({html.escape(link.access)}).</p>"
    else:
        href = f"{INVITATIONS}/webdav/{SHARE_DIR}/{link.invite}/{urllib.parse.quote(top.item.name, safe='')}"
        text = f'<p><a href="{html.escape(href)}">{html.escape(top.item.name)}</a> ({top.item.size} bytes)</p>'
    return f"<!doctype html><meta charset=utf-8><title>Shared with you</title>{text}\n".encode()


def _session(app: PortalApp, request: Request, invite: str) -> tuple[Session, ShareNamespace]:
    """The caller's invitation session for ``invite``, and the link still in force."""
    session = app.sessions.get(request.cookie(COOKIE), INVITATIONS)
    if session is None or session.extra.get("invite") != invite:
        raise HttpError(403, "Open the invitation link first")
    link = _shares.link(app.store, invite)
    if link is None or link.expired():
        raise HttpError(403, NO_LONGER_VALID)
    return session, ShareNamespace(app.store, link)


@method("getShareDetails")
def get_share_details(call: Call, param: ctera_xml.Value) -> Obj:
    namespace = call.namespace
    if not isinstance(namespace, ShareNamespace) or as_str(param) != namespace.link.invite:
        raise HttpError(400, "getShareDetails answers for the invitation of this session only")
    top = namespace.top()
    if top is None or top.item is None:
        raise HttpError(404, "Resource does not exist")
    return obj(
        "ShareDetails",
        mode=namespace.link.access,
        isDirectory=top.item.is_folder,
        name=top.item.name,
        expiration=namespace.link.expires,
        ownerFriendlyName=namespace.user.friendly_name,
    )
