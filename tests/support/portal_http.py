"""Talk to a reference portal over real HTTPS the way clients do, with httpx.

The vendor SDK is the judge of protocol fidelity elsewhere; these helpers are
for tests that need what the SDK never does (ranges, conditional requests,
hostile input, slow streaming bodies, bodies that never fit in memory).

Everything here goes over the wire: a cookie login on ``{ctx}/api/login``,
the ``execute`` envelope on ``{ctx}/api``, multipart uploads exactly as spec
§4.6 lays them out, and downloads on ``{ctx}/webdav``.  TLS is verified
against the portal's own self-signed certificate.
"""

from __future__ import annotations

import ssl
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpx

from tests.support.portal_process import PortalProcess
from wire import ctera_xml
from wire.ctera_xml import Obj, obj

SERVICES = "/ServicesPortal"
TIMEOUT = httpx.Timeout(60.0)


def client(portal: PortalProcess, **kwargs) -> httpx.Client:
    """An unauthenticated client that trusts exactly this portal's certificate."""
    kwargs.setdefault("timeout", TIMEOUT)
    return httpx.Client(base_url=portal.url, verify=tls_context(portal), **kwargs)


def tls_context(portal: PortalProcess) -> ssl.SSLContext | bool:
    """Verification against the portal's self-signed certificate (False for plain HTTP)."""
    return ssl.create_default_context(cafile=str(portal.cert)) if portal.cert else False


@contextmanager
def logged_in(portal: PortalProcess, user: str = "alice", context: str = SERVICES) -> Iterator[httpx.Client]:
    """A client holding a ``JSESSIONID`` for ``user``; closed on exit."""
    password = portal.admins.get(user) or portal.users[user]
    with client(portal) as http:
        reply = http.post(f"{context}/api/login", data={"j_username": user, "j_password": password})
        assert reply.status_code == 200, reply.text
        yield http


def webdav_url(path: str, context: str = SERVICES) -> str:
    """``{ctx}/webdav/<path>`` with every name percent-encoded (``/`` separates)."""
    return f"{context}/webdav/" + urllib.parse.quote(path, safe="/")


def href(path: str, context: str = SERVICES) -> str:
    """The href form of a namespace path, as the SDK sends it in parameters."""
    return webdav_url(path, context).rstrip("/")


def execute(http: httpx.Client, name: str, param: ctera_xml.Value, context: str = SERVICES) -> httpx.Response:
    """POST one ``execute`` envelope; the raw response (callers check the status)."""
    body = ctera_xml.encode(obj(None, type="user-defined", name=name, param=param))
    return http.post(f"{context}/api", content=body, headers={"content-type": "text/xml"})


def call(http: httpx.Client, name: str, param: ctera_xml.Value, context: str = SERVICES) -> ctera_xml.Value:
    """``execute`` that must succeed; the decoded reply."""
    reply = execute(http, name, param, context)
    assert reply.status_code == 200, f"{name}: {reply.status_code} {reply.text}"
    return ctera_xml.decode(reply.content)


def stat(http: httpx.Client, path: str, context: str = SERVICES) -> Obj | None:
    """The depth-0 ``ResourceInfo`` of ``path``, or None when it does not exist."""
    reply = call(http, "fetchResources", obj("FetchResourcesParam", root=href(path, context), depth="0"), context)
    answer = ctera_xml.as_obj(reply)
    assert answer is not None
    return ctera_xml.as_obj(answer.get("root"))


def list_names(http: httpx.Client, path: str, context: str = SERVICES) -> list[str]:
    """Names of a folder's children (first page of up to 1000)."""
    param = obj("FetchResourcesParam", root=href(path, context), depth="1", start="0", limit="1000")
    answer = ctera_xml.as_obj(call(http, "fetchResources", param, context))
    assert answer is not None
    return [ctera_xml.as_str(entry.get("name")) or "" for entry in ctera_xml.iter_objs(answer.get("items"))]


def error_of(reply: httpx.Response) -> tuple[int, str]:
    """``(rc, msg)`` of an error or upload reply; the body must be that object."""
    answer = ctera_xml.as_obj(ctera_xml.decode(reply.content))
    assert answer is not None, f"no XML object in {reply.status_code} reply: {reply.text!r}"
    rc = ctera_xml.as_int(answer.get("rc"))
    msg = ctera_xml.as_str(answer.get("msg"))
    assert rc is not None and msg is not None, f"reply lacks rc/msg: {reply.text!r}"
    return rc, msg


# ------------------------------------------------------------------- upload

UPLOAD_CHUNK = 1 << 20


def multipart_upload(
    portal: PortalProcess,
    path: str,
    content: bytes | Iterable[bytes],
    size: int,
    *,
    context: str = SERVICES,
    boundary: str | None = None,
) -> tuple[str, Iterator[bytes], int]:
    """``(content type, body chunks, body length)`` of an upload of ``content`` to ``path``.

    The parts and their order are the SDK's (spec §4.6).  ``content`` may be an
    iterable of chunks totalling ``size`` bytes, so the body is produced while
    it is sent and a multi-gigabyte upload never sits in the test's memory.
    """
    boundary = boundary or uuid.uuid4().hex
    name = path.rsplit("/", 1)[-1]
    fullpath = f"{portal.url}{webdav_url(path, context)}"
    head = b""
    for field, value in (("name", name), ("Filename", name), ("fullpath", fullpath), ("fileSize", str(size))):
        head += (
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f'Content-Disposition: form-data; name="{field}"\r\n\r\n{value}\r\n'
        ).encode()
    head += (
        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
        f'Content-Disposition: form-data; name="file"; filename="file"\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        if isinstance(content, bytes):
            for offset in range(0, len(content), UPLOAD_CHUNK):
                yield content[offset : offset + UPLOAD_CHUNK]
        else:
            yield from content
        yield tail

    return f"multipart/form-data; boundary={boundary}", chunks(), len(head) + size + len(tail)


def upload(
    http: httpx.Client,
    portal: PortalProcess,
    path: str,
    content: bytes | Iterable[bytes],
    size: int | None = None,
    *,
    context: str = SERVICES,
) -> httpx.Response:
    """Upload ``content`` as ``path`` (a new file or a new version); the raw reply."""
    if size is None:
        assert isinstance(content, bytes), "give the size of streamed content"
        size = len(content)
    folder = stat(http, path.split("/", 1)[0], context)
    assert folder is not None, f"no cloud folder for {path!r}"
    info = ctera_xml.as_obj(folder.get("cloudFolderInfo"))
    assert info is not None
    uid = ctera_xml.as_str(info.get("uid"))
    content_type, body, length = multipart_upload(portal, path, content, size, context=context)
    return http.post(
        f"{context}/upload/folders/{uid}",
        content=body,
        headers={"content-type": content_type, "content-length": str(length)},
    )


def put(http: httpx.Client, portal: PortalProcess, path: str, content: bytes, context: str = SERVICES) -> None:
    """Upload that must succeed (``rc`` 0)."""
    reply = upload(http, portal, path, content, context=context)
    assert reply.status_code == 200, reply.text
    assert error_of(reply) == (0, "OK"), reply.text


def mkdir(http: httpx.Client, parent: str, name: str, context: str = SERVICES) -> str:
    """``makeCollection``; the reply code (``Ok`` or an error code)."""
    reply = call(http, "makeCollection", obj(None, name=name, parentPath=href(parent, context)), context)
    return ctera_xml.as_str(reply) or "Ok"


# -------------------------------------------------------------------- tasks


def run_task(http: httpx.Client, name: str, param: ctera_xml.Value, context: str = SERVICES, timeout: float = 30.0) -> Obj:
    """Submit a background task and poll it to a terminal state; the final status."""
    reference = ctera_xml.as_str(call(http, name, param, context))
    assert reference, f"{name} returned no task reference"
    deadline = time.monotonic() + timeout
    while True:
        status = ctera_xml.as_obj(call(http, "getTaskStatus", reference, context))
        assert status is not None
        if ctera_xml.as_str(status.get("status")) not in ("running", "queued", None):
            return status
        assert time.monotonic() < deadline, f"task {reference} still running after {timeout}s"
        time.sleep(0.05)


def resource_pairs(*pairs: tuple[str, str | None]) -> Obj:
    """The ``{urls: [{src, dest}]}`` parameter of move/copy/delete/restore (hrefs given raw)."""
    return obj(
        "ActionResourcesParam",
        urls=[obj("SrcDstParam", src=src, dest=dest) for src, dest in pairs],
    )
