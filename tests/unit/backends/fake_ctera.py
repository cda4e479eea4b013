"""An in-memory CTERA portal behind ``httpx.MockTransport``, for fault injection only.

Behaviour is tested against the real reference portal; this fake exists for
what a healthy server never does: 5xx bursts, ``Retry-After``, resets and
timeouts, ignoring ``Range``, hostile listings, malformed XML, odd expiry
signals.  It speaks just enough of the protocol (login, ``fetchResources``,
``listSnapshots``, ranged ``GET``) for the client to reach the fault.

Faults are queued with :meth:`FakePortal.fail_next` and consumed in order by
the next requests of that kind; each is a status code, a ready response, or an
exception to raise (``httpx.ReadTimeout``, ``httpx.RemoteProtocolError``…).
"""

from __future__ import annotations

import email.utils
import secrets
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from wire import ctera_xml
from wire.ctera_xml import Obj, obj

MTIME = 1_700_000_000.0
SERVICES = "/ServicesPortal"

Outcome = int | httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeFile:
    content: bytes
    file_id: int
    version: int = 1
    mtime: float = MTIME

    @property
    def etag(self) -> str:
        return f'"{self.file_id}-{self.version}"'


@dataclass
class FakePortal:
    user: str = "alice"
    password: str = "alice-pw"
    context: str = SERVICES
    files: dict[tuple[str, ...], FakeFile] = field(default_factory=dict)
    #: Extra raw ResourceInfo objects appended to a folder's listing (hostile input).
    extra_items: dict[tuple[str, ...], list[Obj]] = field(default_factory=dict)
    #: Raw snapshot records returned by listSnapshots.
    snapshots: list[Obj] = field(default_factory=list)
    honour_range: bool = True
    send_etag: bool = True
    requests: list[httpx.Request] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    _faults: dict[str, deque[Outcome]] = field(default_factory=dict)
    _next_id: int = 100

    # ------------------------------------------------------------ set-up

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add_file(self, path: str, content: bytes) -> FakeFile:
        self._next_id += 1
        fake = FakeFile(content, self._next_id)
        self.files[tuple(path.split("/"))] = fake
        return fake

    def replace_file(self, path: str, content: bytes, *, mtime: float | None = None) -> FakeFile:
        fake = self.files[tuple(path.split("/"))]
        fake.content = content
        fake.version += 1
        if mtime is not None:
            fake.mtime = mtime
        return fake

    def fail_next(self, kind: str, *outcomes: Outcome) -> None:
        """Queue outcomes for the next requests of ``kind``: login, execute, GET, PROPFIND."""
        self._faults.setdefault(kind, deque()).extend(outcomes)

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def count(self, kind: str) -> int:
        return sum(1 for request in self.requests if _kind(request, self.context) == kind)

    # ------------------------------------------------------------ serving

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        kind = _kind(request, self.context)
        queue = self._faults.get(kind)
        if queue:
            outcome = queue.popleft()
            if isinstance(outcome, Exception):
                raise outcome
            if isinstance(outcome, int):
                return error_response(outcome)
            if isinstance(outcome, httpx.Response):
                return outcome
            return outcome(request)
        if kind == "login":
            return self._login(request)
        if not self._authenticated(request):
            return httpx.Response(302, headers={"location": "/ServicesPortal/login.html"})
        if kind == "logout":
            return httpx.Response(200)
        if kind == "execute":
            return self._execute(request)
        if kind == "GET":
            return self._download(request)
        return error_response(405)

    def _login(self, request: httpx.Request) -> httpx.Response:
        form = urllib.parse.parse_qs(request.content.decode())
        if form.get("j_username") != [self.user] or form.get("j_password") != [self.password]:
            return error_response(403, "Authentication failed: Invalid username or password")
        session = secrets.token_hex(8)
        self.sessions.add(session)
        return httpx.Response(200, headers={"set-cookie": f"JSESSIONID={session}; Path=/; Secure; HttpOnly"})

    def _authenticated(self, request: httpx.Request) -> bool:
        cookie = request.headers.get("cookie", "")
        return any(part.strip().removeprefix("JSESSIONID=") in self.sessions for part in cookie.split(";"))

    def _execute(self, request: httpx.Request) -> httpx.Response:
        envelope = ctera_xml.as_obj(ctera_xml.decode(request.content))
        assert envelope is not None
        name = ctera_xml.as_str(envelope.get("name"))
        param = envelope.get("param")
        if name == "fetchResources":
            return xml(self._fetch(ctera_xml.as_obj(param)))
        if name == "listSnapshots":
            return xml(list(self.snapshots))
        return error_response(400, f"unknown method {name}")

    def _fetch(self, param: Obj | None) -> Obj:
        assert param is not None
        path = self.path_of(ctera_xml.as_str(param.get("root")) or "")
        depth = ctera_xml.as_str(param.get("depth"))
        start = ctera_xml.as_int(param.get("start")) or 0
        limit = ctera_xml.as_int(param.get("limit")) or 100
        root = self.info(path)
        if root is None:
            return obj(
                "FetchResourcesResp",
                root=None,
                items=[],
                hasMore=False,
                errorType=None if depth == "0" else "DestinationNotExists",
            )
        if depth == "0" or path in self.files:
            return obj("FetchResourcesResp", root=root, items=None, hasMore=False, errorType=None)
        names = sorted({p[len(path)] for p in self.files if len(p) > len(path) and p[: len(path)] == path})
        items: list[ctera_xml.Value] = [self.info((*path, name)) for name in names]
        items += self.extra_items.get(path, [])
        page = items[start : start + limit]
        return obj("FetchResourcesResp", root=root, items=page, hasMore=start + limit < len(items), errorType=None)

    def info(self, path: tuple[str, ...]) -> Obj | None:
        fake = self.files.get(path)
        is_folder = fake is None
        if is_folder and path and not any(p[: len(path)] == path and len(p) > len(path) for p in self.files):
            return None
        return resource_info(
            self.context,
            path,
            is_folder=is_folder,
            size=0 if fake is None else len(fake.content),
            file_id=None if fake is None else fake.file_id,
            mtime=MTIME if fake is None else fake.mtime,
            scope="Root" if not path else "InsideCloudFolder",
        )

    def path_of(self, href: str) -> tuple[str, ...]:
        prefix = f"{self.context}/webdav"
        assert href == prefix or href.startswith(prefix + "/"), href
        return tuple(urllib.parse.unquote(p) for p in href[len(prefix) :].split("/") if p)

    def _download(self, request: httpx.Request) -> httpx.Response:
        path = self.path_of(request.url.raw_path.decode("ascii").split("?")[0])
        fake = self.files.get(path)
        if fake is None:
            return error_response(404, "Resource does not exist")
        size = len(fake.content)
        headers = {"last-modified": email.utils.formatdate(fake.mtime, usegmt=True), "accept-ranges": "bytes"}
        if self.send_etag:
            headers["etag"] = fake.etag
        wanted = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if not self.honour_range or wanted is None or (if_range is not None and if_range != fake.etag):
            return httpx.Response(200, headers=headers, content=fake.content)
        first_text, _, last_text = wanted.removeprefix("bytes=").partition("-")
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
        if first >= size:
            return httpx.Response(416, headers={"content-range": f"bytes */{size}"})
        headers["content-range"] = f"bytes {first}-{last}/{size}"
        return httpx.Response(206, headers=headers, content=fake.content[first : last + 1])


def _kind(request: httpx.Request, context: str) -> str:
    path = request.url.path
    if path == f"{context}/api/login":
        return "login"
    if path == f"{context}/api/logout":
        return "logout"
    if path == f"{context}/api":
        return "execute"
    return request.method


def resource_info(
    context: str,
    path: tuple[str, ...],
    *,
    is_folder: bool,
    size: int = 0,
    file_id: int | None = None,
    mtime: float = MTIME,
    scope: str = "InsideCloudFolder",
    name: str | None = None,
    href: str | None = None,
) -> Obj:
    """A ``ResourceInfo``; ``name`` and ``href`` may be given raw to build hostile ones."""
    encoded = "/".join(urllib.parse.quote(n, safe="") for n in path)
    return obj(
        "ResourceInfo",
        name=name if name is not None else (path[-1] if path else ""),
        href=href if href is not None else (f"{context}/webdav/{encoded}" if encoded else f"{context}/webdav"),
        isFolder=is_folder,
        isDeleted=False,
        size=size,
        lastmodified=ctera_xml.format_timestamp(mtime),
        permalink=None,
        cloudFolderInfo=None,
        fileId=file_id,
        scope=scope,
        permission="ReadWrite",
    )


def xml(value: ctera_xml.Value, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=ctera_xml.encode(value), headers={"content-type": "text/xml"})


def error_response(
    status: int, message: str = "injected failure", headers: dict[str, str] | None = None
) -> httpx.Response:
    body = ctera_xml.encode(obj("ErrorInfo", rc=-1, msg=message))
    return httpx.Response(status, content=body, headers={"content-type": "text/xml", **(headers or {})})
