"""The portal as one ASGI application: routing, authentication, error replies.

Routes (``{ctx}`` is ``/ServicesPortal`` or ``/admin``):

==========================================  =====================================
``POST {ctx}/api/login`` / ``logout``        sessions (:mod:`portal.http.account`)
``GET  {ctx}/api/<object>``                  currentSession, currentPortal, version, rolesSettings/…
``PUT  /admin/api/currentPortal``            a global admin browses into a tenant
``POST {ctx}/api``                           execute methods (:mod:`portal.http.execute`)
``POST {ctx}/api/users/<name>``              the ``db get-multi`` call
``GET  /admin/api/servers/<s>/bgTasks/<n>``  task polling for global admins
``GET|HEAD {ctx}/webdav/<path>``             download (:mod:`portal.http.transfer`)
other verbs on ``{ctx}/webdav/<path>``       WebDAV class 1 (:mod:`portal.http.webdav`)
``POST {ctx}/upload/folders/<uid>``          upload
``POST {ctx}/folders/folders/<uid>``         ZIP of a folder or selection
``GET  {ctx}/public/publicInfo``             unauthenticated connection test
``POST {ctx}/v2/api/metadata/<call>``       the change feed (:mod:`portal.http.feed`)
``/invitations/…``                           public links (:mod:`portal.http.invitations`)
``POST /portalfs/test/expire-sessions``      test hook, only with ``test_hooks``
==========================================  =====================================

Authentication: a ``JSESSIONID`` cookie; on ``/webdav`` also HTTP Basic.  A
cookie that names no live session gets the 302 to the login page the vendor
SDK recognises as expiry; a WebDAV request with no credentials gets a 401
challenge so stock WebDAV clients can log in.

Every failure becomes a response: an :class:`HttpError` with its status, a
:class:`StoreError` with its natural status, anything else a logged 500 — the
server keeps serving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from portal.http import (  # noqa: F401 - register methods
    account, archive, browse, credentials, feed, invitations, sharing, tasks, transfer, webdav,
)
from portal.http.asgi import HttpError, Receive, Request, Response, Scope, Send, text_response, xml_response
from portal.http.execute import Call, execute
from portal.http.namespace import Namespace
from portal.http.sessions import ADMIN, CONTEXTS, COOKIE, INVITATIONS, LOGIN_PAGE, Session, SessionTable
from portal.http.tasks import TaskBoard
from portal.store import NotFound, PermissionDenied, Store, StoreError, User
from wire import ctera_xml

log = logging.getLogger("portal.http")

#: The most of a refused request's body read (and dropped) so that the refusal
#: is delivered; see :meth:`Request.discard`.
DRAIN_LIMIT = 16 << 20


@dataclass
class PortalApp:
    """The ASGI callable; owns no state of its own beyond its collaborators."""

    store: Store
    sessions: SessionTable
    tasks: TaskBoard
    test_hooks: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.monotonic()
        try:
            request = Request(scope, receive)
        except HttpError as exc:  # a path that does not even decode
            log.warning("%s %r -> %d %s", scope.get("method"), scope.get("raw_path"), exc.status, exc.message)
            await exc.response().send(send)
            return
        try:
            response = await self._route(request)
        except HttpError as exc:
            response = exc.response()
            log.warning("%s %s -> %d %s", request.method, scope.get("path"), exc.status, exc.message)
        except StoreError as exc:
            response = _store_error_response(exc)
            log.warning("%s %s -> %d %s", request.method, scope.get("path"), response.status, exc)
        except Exception:
            log.exception("%s %s failed", request.method, scope.get("path"))
            response = HttpError(500, "internal error").response()
        if response.status >= 300:  # refusals, and the 302 that tells the SDK to log in again
            await request.discard(DRAIN_LIMIT)  # so that it reaches the client
        streamed = await response.send(send, head_only=request.method == "HEAD")
        # One line per request: tests count portal requests and content bytes from these.
        # A streamed reply with a length logs what it promised (a client may hang up before
        # the end of a long range); a stream without one (an archive) what it produced.
        if request.method == "HEAD" or isinstance(response.body, bytes):
            sent: int = streamed
        else:
            sent = response.content_length if response.content_length is not None else streamed
        log.debug(
            "%s %s%s -> %d, %s bytes, %.1fms", request.method, scope.get("path"),
            f" [{scope['portalfs.method']}]" if "portalfs.method" in scope else "", response.status, sent,
            1000 * (time.monotonic() - started),
        )

    # ------------------------------------------------------------- routing

    async def _route(self, request: Request) -> Response:
        segments = request.segments
        if not segments:
            raise HttpError(404, "Resource does not exist")
        if segments[0] == "portalfs":
            return await self._hooks(request, segments[1:])
        context = "/" + segments[0]
        if context == INVITATIONS:
            return await invitations.route(self, request, segments[1:])
        if context not in CONTEXTS:
            raise HttpError(404, "Resource does not exist")
        area, rest = (segments[1], segments[2:]) if len(segments) > 1 else ("", [])
        method = request.method

        if area == "api" and rest == ["login"] and method == "POST":
            return await account.login(self.sessions, request, context)
        if area == "public" and rest == ["publicInfo"] and method == "GET":
            return account.public_info()

        session, user = self._authenticate(request, context, area)
        namespace = Namespace(self.store, user, context)

        if area == "api":
            return await self._api(request, context, session, namespace, rest)
        if area == "v2" and rest[:1] == ["api"]:
            return await feed.handle(self.store, namespace, request, rest[1:])
        if area == "webdav":
            if method in ("GET", "HEAD"):
                return await transfer.download(self.store, namespace, request, rest)
            return await webdav.handle(self.store, namespace, request, rest)
        if area == "upload" and method == "POST" and rest[:1] == ["folders"] and len(rest) <= 2:
            return await transfer.upload(self.store, namespace, request, rest[1] if len(rest) == 2 else None)
        if area == "upload" and method == "POST" and not rest:
            return await transfer.upload(self.store, namespace, request, None)
        if area == "folders" and method == "POST" and rest[:1] == ["folders"]:
            return await archive.download_zip(self.store, namespace, request)
        raise HttpError(404, "Resource does not exist")

    def _authenticate(self, request: Request, context: str, area: str) -> tuple[Session | None, User]:
        cookie = request.cookie(COOKIE)
        session = self.sessions.get(cookie, context)
        if session is not None:
            return session, session.user
        if area == "webdav":
            user = self.sessions.basic(request.headers.get("authorization"), context)
            if user is not None:
                return None, user
            if cookie is None:
                raise HttpError(401, "authentication required", headers=[("www-authenticate", 'Basic realm="portalfs"')])
        raise HttpError(302, "Session expired. Please log in again.", headers=[("location", LOGIN_PAGE)])

    async def _api(
        self, request: Request, context: str, session: Session | None, namespace: Namespace, rest: list[str]
    ) -> Response:
        if session is None:
            raise HttpError(302, "Session expired", headers=[("location", LOGIN_PAGE)])
        method = request.method
        if not rest and method == "POST":
            return await execute(lambda: Call(self, request, session, namespace), request)
        if rest == ["logout"] and method == "POST":
            self.sessions.logout(session.id)
            return Response(200, b"")
        if method == "GET" and rest == ["currentSession"]:
            return xml_response(account.current_session(session))
        if method == "GET" and rest == ["currentPortal"]:
            return xml_response(account.current_portal(session))
        if method == "PUT" and rest == ["currentPortal"] and context == ADMIN:
            value = ctera_xml.decode(await request.body(4096))
            session.browsing_tenant = ctera_xml.as_str(value) or ""
            return Response(200, b"")
        if method == "GET" and rest == ["version"]:
            return xml_response(account.PORTAL_VERSION)
        if method == "GET" and len(rest) == 2 and rest[0] == "rolesSettings":
            return xml_response(account.role_settings(session, rest[1]))
        if method == "GET" and len(rest) == 4 and rest[0] == "servers" and rest[2] == "bgTasks":
            return xml_response(self.tasks.find("/".join(rest), session.user).encode())
        if method == "POST" and len(rest) == 2 and rest[0] == "users":
            return await self._db_call(request, session, rest[1])
        raise HttpError(404, "Resource does not exist")

    async def _db_call(self, request: Request, session: Session, user_name: str) -> Response:
        envelope = ctera_xml.as_obj(ctera_xml.decode(await request.body(64 << 10)))
        if envelope is None or ctera_xml.as_str(envelope.get("name")) != "get-multi":
            raise HttpError(400, "only get-multi is supported here")
        wanted = [ctera_xml.as_str(v) or "" for v in ctera_xml.as_list(envelope.get("param"))]
        return xml_response(account.user_fields(self.store, session, user_name, wanted))

    async def _hooks(self, request: Request, rest: list[str]) -> Response:
        if not self.test_hooks:
            raise HttpError(404, "Resource does not exist")
        if rest == ["test", "expire-sessions"] and request.method == "POST":
            return text_response(f"expired {self.sessions.expire_all()} sessions\n")
        if rest == ["test", "snapshot"] and request.method == "POST":
            taken = [self.store.take_snapshot(f.id, force=True) for f in self.store.all_cloud_folders()]
            return text_response(f"took {len([t for t in taken if t])} snapshots\n")
        raise HttpError(404, "Resource does not exist")


def _store_error_response(exc: StoreError) -> Response:
    status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, PermissionDenied) else 409
    return HttpError(status, str(exc) or exc.code).response()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


Handler = Callable[[Request], Awaitable[Response]]
