"""A logged-in CTERA session that renews itself when the portal forgets it.

Login is ``POST {ctx}/api/login`` with the form fields ``j_username`` and
``j_password``; the portal answers 200 with a ``JSESSIONID`` cookie, or 403
for wrong credentials (spec §2.1).  Every later request carries that cookie.
The three "start the session" GETs the vendor SDK makes after login
(``currentSession``, ``currentPortal``, ``version``) are skipped: nothing here
needs their answers.

Expiry.  Portals forget sessions (idle timeout, restart, fail-over), and a
mount lives for weeks, so expiry must be invisible to the filesystem.  The
signals (spec §2.5, docs/PROTOCOL-CHOICES.md #8) are:

* a redirect whose ``Location`` mentions ``login`` (the vendor SDK knows
  only ``302 /ServicesPortal/login.html``; other deployments send SSO pages),
* a 401,
* a 403 on a request that succeeded before in this process (a 403 on a
  request never seen to work is a genuine "permission denied", and must not
  cost a login: the portal hashes the password on every login).

On a signal the request is repeated once after a new login.  Concurrent
tasks that all hit the dead session must cause *one* login, not one each:
the login runs under a ``trio.Lock``, and a generation counter (bumped by
every login) lets a task that waited for the lock see that someone else
already renewed the session it used, and just retry.

Streamed request bodies (uploads) are given as a *factory* (``body``): the
repeat after a re-login needs the body again from its start, and only the
caller can produce it again.  The portal reads (drains) a request's body
before it answers 302, so the expiry of a session is seen after an upload's
body was sent, and the body is then sent a second time.  A factory that
cannot start again (a file still being written, streamed as it arrives)
raises ``Transient`` when it is called a second time.

The password is kept only to log in again; it is never logged, never put in
an exception message, and excluded from ``repr``.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

import httpx
import trio

from vfs.backends.base import (
    AuthenticationFailed,
    BackendError,
    PermissionDenied,
    ProtocolError,
)
from vfs.backends.ctera.bodies import WholeBody, receive
from vfs.backends.ctera.bulk import BulkResponse, BulkTransport
from vfs.backends.ctera.counters import Counters, RequestKind
from vfs.backends.ctera.errors import MAX_ERROR_BODY, error_for_status, from_transport

__all__ = ["ADMIN", "SERVICES", "AnyResponse", "BodyFactory", "Reply", "Session"]

log = logging.getLogger(__name__)

SERVICES = "/ServicesPortal"
ADMIN = "/admin"
COOKIE = "JSESSIONID"

#: How many request keys "that worked before" are remembered (LRU).
WORKED_KEYS = 4096
#: A logout never holds up a shutdown longer than this.
LOGOUT_TIMEOUT = 5.0

_REDIRECTS = frozenset({301, 302, 303, 307, 308})

#: Makes a streamed request body afresh, from its start, for each send.  A
#: body whose length the headers do not give (``content-length``) is sent chunked.
BodyFactory = Callable[[], httpx.AsyncByteStream]
#: What :meth:`Session.open` yields: httpx's response, or a bulk one for ``bulk=True``.
AnyResponse = httpx.Response | BulkResponse


@dataclass(frozen=True)
class Reply:
    """A complete 2xx reply: status, headers, body."""

    status: int
    headers: httpx.Headers
    body: bytes


class Session:
    """One context's session on one portal, over one ``httpx.AsyncClient``
    (and a :class:`~.bulk.BulkTransport` for content, when there is one).

    ``_lock`` guards logging in (``_session_id`` and ``_generation`` change only
    under it); ``_worked`` is touched only by the trio thread between awaits.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        context: str,
        user: str,
        password: str,
        counters: Counters,
        bulk: BulkTransport | None = None,
    ) -> None:
        self.client = client
        self.bulk = bulk
        self.context = context
        self.user = user
        self.__password = password
        self.counters = counters
        self._lock = trio.Lock()
        self._generation = 0
        self._session_id: str | None = None
        self._worked: OrderedDict[str, None] = OrderedDict()

    def __repr__(self) -> str:
        return f"<Session {self.user!r} at {self.client.base_url}{self.context} generation {self._generation}>"

    @property
    def url(self) -> str:
        """The portal's base URL, for messages."""
        return str(self.client.base_url).rstrip("/")

    @property
    def generation(self) -> int:
        """How many times this session logged in."""
        return self._generation

    # ---------------------------------------------------------------- login

    async def login(self) -> None:
        """Log in now (replacing any current session)."""
        async with self._lock:
            await self._login_locked()

    async def _login_locked(self) -> None:
        what = f"login to {self.url}{self.context} as {self.user!r}"
        self.counters.requests[RequestKind.LOGIN] += 1
        try:
            form = urllib.parse.urlencode({"j_username": self.user, "j_password": self.__password}).encode()
            request = self.build_request("POST", f"{self.context}/api/login",
                                         {"content-type": "application/x-www-form-urlencoded"}, form)
            response = await self.client.send(request)  # read whole; closed if that fails
        except httpx.TransportError as exc:
            raise from_transport(exc, what=what, url=self.url) from exc
        self.counters.bytes_received += len(response.content)
        if response.status_code == 403:
            hint = " (global administrators log in with admin=True)" if self.context == SERVICES else ""
            raise AuthenticationFailed(f"{what} refused: wrong user name or password{hint}")
        if response.status_code in _REDIRECTS:
            raise ProtocolError(f"{what}: redirected to {response.headers.get('location')!r} (SSO is not supported)")
        if not response.is_success:
            raise error_for_status(response.status_code, what=what, body=response.content, headers=response.headers)
        session_id = _session_cookie(response.headers.get_list("set-cookie"))
        if not session_id:
            raise ProtocolError(f"{what}: the portal accepted the login but sent no {COOKIE} cookie")
        self._session_id = session_id
        self._generation += 1
        self._worked.clear()
        log.info("logged in to %s%s as %r", self.url, self.context, self.user)

    async def _renew(self, seen_generation: int) -> None:
        """Log in again, unless another task already did since ``seen_generation``."""
        async with self._lock:
            if self._generation != seen_generation:
                return
            self.counters.relogins += 1
            log.info("the portal session of %r expired; logging in again", self.user)
            await self._login_locked()

    async def logout(self) -> None:
        """End the session on the portal; best effort, bounded, never raises."""
        session_id, self._session_id = self._session_id, None
        if session_id is None:
            return
        with trio.move_on_after(LOGOUT_TIMEOUT) as scope:
            scope.shield = True  # also when the caller is being cancelled
            self.counters.requests[RequestKind.LOGOUT] += 1
            try:
                request = self.build_request("POST", f"{self.context}/api/logout", self._headers(session_id, None), b"")
                await self.client.send(request)
            except httpx.HTTPError as exc:
                log.info("logout from %s failed (ignored): %s", self.url, exc)

    def build_request(self, method: str, path: str, headers: Mapping[str, str], content: bytes | None,
                      body: BodyFactory | None = None) -> httpx.Request:
        """The httpx request, its body (if any) sent without an async generator (see bodies.py)."""
        request = self.client.build_request(method, path, headers=headers, content=content)
        if body is not None:
            # Rebuilt around the stream (URL and headers as the client prepared them).
            return httpx.Request(method, request.url, headers=request.headers, stream=body(),
                                 extensions=request.extensions)
        if content is not None:
            request.stream = WholeBody(content)  # the request keeps its content, read already
        return request

    # ------------------------------------------------------------- requests

    @asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        body: BodyFactory | None = None,
        bulk: bool = False,
        reads_only: bool = False,
    ) -> AsyncIterator[AnyResponse]:
        """Send a request with the session cookie; yield the response, body not yet read.

        The response is never an expiry signal that a new login could cure:
        those are handled here.  Any other status, 2xx or not, is the caller's.
        Transport failures are raised as ``Transient``/``Unreachable``.
        ``body`` streams the request body instead of ``content`` (see the module
        docstring); it is called once per send.  ``bulk`` (a GET of content, or
        a request whose ``body`` is content) sends it through the bulk transport
        when there is one: the response is then a :class:`~.bulk.BulkResponse`.
        ``reads_only`` says that sending the request twice does no harm (a
        ``POST`` that only asks for content): it may then go on a kept-alive
        connection, with ``content``.
        """
        if bulk and content is not None and not reads_only:
            raise ValueError("a bulk request that changes something streams its body (body=), never content=")
        key = _request_key(method, path, content)
        renewed = False
        while True:
            generation = self._generation
            if self._session_id is None:
                await self._renew(generation)
                continue
            response: AnyResponse
            self.counters.requests[kind] += 1
            if bulk and self.bulk is not None:
                response = await self.bulk.send(
                    method, path, self._headers(self._session_id, headers), body=body, content=content,
                    reads_only=reads_only, what=what, url=self.url,
                )
            else:
                response = await self._send(method, path, what=what, headers=headers, content=content, body=body)
            try:
                signal = self._expiry_signal(response, key)
                if signal is not None and not renewed:
                    renewed = True
                    log.info("%s: %s", what, signal)
                    await response.aclose()
                    await self._renew(generation)
                    continue
                if signal is not None and response.status_code in _REDIRECTS:
                    raise PermissionDenied(f"{what}: still {signal} right after a new login")
                if response.is_success:
                    self._remember(key)
                yield response
                return
            finally:
                await response.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        what: str,
        limit: int,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        body: BodyFactory | None = None,
        bulk: bool = False,
        reads_only: bool = False,
    ) -> Reply:
        """Like :meth:`open`, with the body read (at most ``limit`` bytes, else ProtocolError).

        A non-2xx reply is raised as its ``BackendError``.
        """
        async with self.open(
            method, path, kind=kind, what=what, headers=headers, content=content, body=body, bulk=bulk,
            reads_only=reads_only,
        ) as response:
            if not response.is_success:
                raise await self.error_of(response, what=what)
            body = await self.read_body(response, what=what, limit=limit)
            return Reply(response.status_code, response.headers, body)

    async def read_body(self, response: AnyResponse, *, what: str, limit: int, truncate: bool = False) -> bytes:
        """The whole body of a streamed response; more than ``limit`` bytes is a
        ProtocolError, or with ``truncate`` just the first ``limit`` bytes."""
        too_large = f"{what}: the reply is larger than {limit} bytes"
        if isinstance(response, BulkResponse):  # one piece, read on the worker thread (a ZIP: one copy)
            data = await response.read_some(limit + 1)
            self.counters.bytes_received += len(data)
            if len(data) > limit and not truncate:
                raise ProtocolError(too_large)
            return data if len(data) <= limit else data[:limit]
        body = bytearray()

        def take(chunk: bytes) -> bool:
            self.counters.bytes_received += len(chunk)
            body.extend(chunk)
            if len(body) > limit and not truncate:
                raise ProtocolError(too_large)
            return len(body) <= limit

        await receive(response, take, what=what, url=self.url)
        return bytes(body) if len(body) <= limit else bytes(body[:limit])

    async def error_of(self, response: AnyResponse, *, what: str) -> BackendError:
        """The ``BackendError`` of a non-2xx response (its body's reason included)."""
        body = await self.read_body(response, what=what, limit=MAX_ERROR_BODY, truncate=True)
        return error_for_status(response.status_code, what=what, body=body, headers=response.headers)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        body: BodyFactory | None = None,
    ) -> httpx.Response:
        request = self.build_request(method, path, self._headers(self._session_id, headers), content, body)
        try:
            return await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise from_transport(exc, what=what, url=self.url) from exc

    def _headers(self, session_id: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if session_id is not None:
            headers["cookie"] = f"{COOKIE}={session_id}"
        return headers

    def _expiry_signal(self, response: AnyResponse, key: str) -> str | None:
        """Why ``response`` looks like a forgotten session, or None."""
        status = response.status_code
        if status in _REDIRECTS:
            location = response.headers.get("location", "")
            return f"redirected to the login page {location!r}" if "login" in location.lower() else None
        if status == 401:
            return "401 Unauthorized"
        if status == 403 and key in self._worked:
            return "403 on a request that worked before"
        return None

    def _remember(self, key: str) -> None:
        self._worked[key] = None
        self._worked.move_to_end(key)
        while len(self._worked) > WORKED_KEYS:
            self._worked.popitem(last=False)


def _request_key(method: str, path: str, content: bytes | None) -> str:
    digest = hashlib.blake2b(content, digest_size=12).hexdigest() if content else ""
    return f"{method} {path} {digest}"


def _session_cookie(set_cookie_headers: list[str]) -> str | None:
    for header in set_cookie_headers:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        if COOKIE in jar and jar[COOKIE].value:
            return jar[COOKIE].value
    return None

