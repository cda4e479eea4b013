"""WebDAV class 1 on ``{ctx}/webdav`` (RFC 4918) for stock clients (rclone, davfs2).

``GET``/``HEAD`` are served by :mod:`portal.http.transfer`; this module answers
``OPTIONS``, ``PROPFIND``, ``PROPPATCH``, ``PUT``, ``MKCOL``, ``DELETE``,
``COPY`` and ``MOVE`` on the same namespace the CTERA API shows, so a file
written one way is read the other.  Properties and XML live in
:mod:`portal.http.webdav_props`.

Choices and subtleties:

* ``PROPFIND`` answers ``Depth: 0`` and ``1``.  ``infinity`` — and a missing
  ``Depth``, which means infinity — is refused with 403 and the RFC's
  ``DAV:propfind-finite-depth`` precondition: one request must not walk a
  whole drive.  Depth 1 pages through :func:`~portal.http.browse.list_page`,
  so it costs O(children).  Collection hrefs end in ``/``.
* ``PUT`` streams the body into a staged blob, never holding it in memory,
  and refuses early what it can: a declared ``Content-Length`` beyond the
  quota (507 before a byte is read), and a chunked body as soon as it passes
  the quota.  The parent is resolved again after the body arrived, because
  another request may have deleted it meanwhile.  ``Content-Range`` is a 400
  (RFC 9110 §14.5: partial PUT is not supported).  201 new, 204 new version
  (same ``fileId``; the ``ETag`` of the new version is returned).
* ``DELETE`` sends the item (a folder with its subtree) to the recycle bin,
  where the CTERA API can restore it.
* ``COPY``/``MOVE`` take ``Destination`` as an absolute URL or an absolute
  path, percent-encoded (raw UTF-8 bytes are tolerated).  Another host or
  port, or another context or a path outside ``{ctx}/webdav``, is 502 (RFC
  4918 §9.8.5: "another server, repository, or URL namespace").
  ``Overwrite`` defaults to ``T``; the replaced item goes to the recycle bin.
  A folder into itself, or onto itself, is 403.  ``COPY`` honours ``Depth: 0``
  (the folder alone) and ``infinity``; copying out of a snapshot into the live
  tree is how a WebDAV client restores old content.
* ``PROPPATCH`` answers 207 refusing every property with 403: live ones are
  protected, and the portal has nowhere to keep dead properties.
* ``If-Match``/``If-None-Match`` are honoured on the target of ``PUT`` and
  ``DELETE`` and the source of ``COPY``/``MOVE`` (412); a ``PUT``'s are
  checked again once its body has arrived (a body may take minutes, and the
  target may change meanwhile); there are no locks
  (class 1), so ``LOCK``/``UNLOCK`` are 405.
* Statuses: a missing parent is 409; a read-only place (the root, the
  ``Users`` containers, ``.snapshots`` and everything in a snapshot, a cloud
  folder itself for ``DELETE``/``MOVE``) is 403; a name the portal refuses
  (Windows rules, :mod:`portal.store.names`) is 400, a reserved one 403; the
  quota or a full disk is 507 with RFC 4331's ``quota-not-exceeded`` or
  ``sufficient-disk-space``.  Preconditions are reported in a ``DAV:error``
  body; other refusals carry the portal's usual ``{rc, msg}`` body.
* A refused request's unread body is drained when small (up to
  :data:`DRAIN_LIMIT`), so the refusal is not lost to a TCP reset.
"""

from __future__ import annotations

import errno
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable

from portal.http.asgi import HttpError, Request, Response, href
from portal.http.browse import MAX_PAGE, list_page
from portal.http.namespace import Namespace, Node
from portal.http.transfer import etag_of
from portal.http.webdav_props import (
    QUOTA_PROPS,
    XML_CONTENT_TYPE,
    PropertySource,
    error_body,
    multistatus,
    parse_propfind,
    parse_proppatch,
    proppatch_response,
    response,
)
from portal.store import (
    Exists,
    InvalidName,
    Item,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ReservedName,
    Store,
    StoreError,
)

ALLOWED = "OPTIONS, GET, HEAD, PROPFIND, PROPPATCH, PUT, MKCOL, DELETE, COPY, MOVE"
#: PROPFIND/PROPPATCH bodies are a few hundred bytes; anything much larger is abuse.
MAX_XML_BODY = 64 << 10
#: A refused request body up to this size is read to its end (see :func:`_drain`).
DRAIN_LIMIT = 1 << 20
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DavError(HttpError):
    """A refusal whose body is RFC 4918's ``DAV:error`` naming a precondition."""

    def __init__(self, status: int, message: str, condition: str) -> None:
        super().__init__(status, message)
        self.condition = condition

    def response(self) -> Response:
        return Response(self.status, error_body(self.condition, self.message), content_type=XML_CONTENT_TYPE)


Handler = Callable[[Store, Namespace, Request, list[str]], Awaitable[Response]]


async def handle(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    handler = _HANDLERS.get(request.method)
    if handler is None:
        raise HttpError(405, f"{request.method} is not supported here", headers=[("allow", ALLOWED)])
    try:
        try:
            return await handler(store, namespace, request, path)
        except StoreError as exc:
            raise _refusal(exc) from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DavError(507, "the portal's disk is full", "sufficient-disk-space") from None
            raise
    except HttpError:
        await _drain(request)
        raise


def _refusal(exc: StoreError) -> HttpError:
    """The WebDAV status of a store refusal that no handler turned into a better one."""
    if isinstance(exc, QuotaExceeded):
        return DavError(507, str(exc), "quota-not-exceeded")
    if isinstance(exc, NotFound):
        return HttpError(404, str(exc) or "Resource does not exist")
    if isinstance(exc, (PermissionDenied, ReservedName)):
        return HttpError(403, str(exc))
    if isinstance(exc, InvalidName):
        return HttpError(400, str(exc))
    return HttpError(409, f"{exc.code}: {exc}")


# ----------------------------------------------------------------- helpers


def _href(namespace: Namespace, node: Node) -> str:
    # Collections end in "/" (RFC 4918 §5.2) so relative references resolve inside them.
    return href(namespace.context, node.path) + ("/" if node.is_folder else "")


def _resolve(namespace: Namespace, path: list[str]) -> Node:
    try:
        return namespace.resolve(path)
    except NotFound:
        raise HttpError(404, "Resource does not exist") from None


def _writable_parent(namespace: Namespace, path: list[str]) -> tuple[Node, str]:
    """The folder that will hold ``path`` and the new name; 409 if missing, 403 if read-only."""
    if not path:
        raise HttpError(403, "the root cannot be replaced")
    try:
        parent = namespace.resolve(path[:-1])
    except NotFound:
        raise HttpError(409, "the parent folder does not exist") from None
    if not parent.is_folder:
        raise HttpError(409, "the parent is a file, not a folder")
    if not parent.writable or parent.item is None:
        raise HttpError(403, f"{'/'.join(parent.path) or 'the root'} is read-only")
    return parent, path[-1]


def _depth(request: Request, allowed: tuple[str, ...], default: str) -> str:
    value = (request.headers.get("depth") or default).strip().lower()
    if value not in allowed:
        raise HttpError(400, f"Depth {value!r} is not allowed for {request.method} (use {' or '.join(allowed)})")
    return value


def _check_conditions(request: Request, node: Node | None) -> None:
    """``If-Match`` / ``If-None-Match`` against the current ETag (files) or existence."""
    current = etag_of(node.item) if node is not None and node.item is not None and not node.is_folder else None
    if_match = request.headers.get("if-match")
    if if_match is not None:
        tags = {tag.strip() for tag in if_match.split(",")}
        if node is None or ("*" not in tags and current not in tags):
            raise HttpError(412, "If-Match does not match the current version")
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and node is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        if "*" in tags or current in tags:
            raise HttpError(412, "If-None-Match: the resource exists")


def _destination(request: Request, context: str) -> list[str]:
    """The namespace path ``Destination`` names; 502 for anything not served by this WebDAV root."""
    value = request.headers.get("destination")
    if not value or not value.strip():
        raise HttpError(400, f"{request.method} needs a Destination header")
    try:
        target = urllib.parse.urlsplit(value.strip())
        if target.scheme or target.netloc:
            if _authority(target.scheme, target.netloc) != _authority(request.scheme, request.host):
                raise HttpError(502, f"Destination {value[:200]!r} is on another server")
        # Headers arrive as latin-1: recover the bytes, so raw UTF-8 works as well as %-escapes.
        raw = target.path.encode("latin-1")
        names = [urllib.parse.unquote_to_bytes(part).decode("utf-8") for part in raw.split(b"/") if part]
    except (ValueError, UnicodeError):
        raise HttpError(400, f"malformed Destination {value[:200]!r}") from None
    if names[:2] != [context.lstrip("/"), "webdav"]:
        raise HttpError(502, f"Destination {value[:200]!r} is outside {context}/webdav")
    return names[2:]


def _authority(scheme: str, netloc: str) -> tuple[str, str, int]:
    scheme = scheme.lower() or "https"
    parsed = urllib.parse.urlsplit(f"//{netloc}")
    return scheme, (parsed.hostname or "").lower(), parsed.port or _DEFAULT_PORTS.get(scheme, 0)


def _no_content(headers: list[tuple[str, str]] | None = None) -> Response:
    """A 204.  Its body is an (empty) stream so that no ``Content-Length`` is sent,
    which RFC 9110 §8.6 forbids on a 204."""

    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    return Response(204, nothing(), headers=headers or [])


async def _drain(request: Request) -> None:
    """Read and drop what is left of a small refused body.

    The connection is closed after a response to a request whose body was not
    read; closing a socket with unread data makes TCP reset it, and the reset can
    destroy the response before the client reads it.  Past :data:`DRAIN_LIMIT`
    the refusal is worth less than the bandwidth, and the client takes its chances.
    """
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.strip().isdigit() or int(declared) > DRAIN_LIMIT):
        return
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > DRAIN_LIMIT:
                return
    except (RuntimeError, HttpError):  # already read, or the client went away
        return


async def _has_body(request: Request) -> bool:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > DRAIN_LIMIT:
            break
    return received > 0


# ---------------------------------------------------------------- handlers


async def _options(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    return Response(200, b"", headers=[("dav", "1"), ("allow", ALLOWED), ("ms-author-via", "DAV")])


async def _propfind(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    depth = _depth(request, ("0", "1", "infinity"), "infinity")
    if depth == "infinity":
        raise DavError(403, "Depth infinity is not supported; use Depth 0 or 1", "propfind-finite-depth")
    wanted = parse_propfind(await request.body(MAX_XML_BODY))
    node = _resolve(namespace, path)
    # Quota figures cost a scan of the owner's items: only compute them when asked for.
    with_quota = wanted.kind == "propname" or any(name in QUOTA_PROPS for name in wanted.names)
    source = PropertySource(store, namespace)
    parts = [response(_href(namespace, node), wanted, source.values(node, with_quota=with_quota))]
    if depth == "1" and node.is_folder:
        start = 0
        while True:
            page, more = list_page(namespace, node, start, MAX_PAGE, False)
            for child in page:
                parts.append(response(_href(namespace, child), wanted, source.values(child, with_quota=with_quota)))
            if not more or not page:
                break
            start += len(page)
    return Response(207, multistatus(parts), content_type=XML_CONTENT_TYPE)


async def _proppatch(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    node = _resolve(namespace, path)
    names = parse_proppatch(await request.body(MAX_XML_BODY))
    return Response(207, multistatus([proppatch_response(_href(namespace, node), names)]), content_type=XML_CONTENT_TYPE)


async def _put(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    if request.headers.get("content-range") is not None:
        raise HttpError(400, "partial PUT (Content-Range) is not supported")
    if not path:
        raise HttpError(405, "the root is a collection; PUT a file below it")
    parent, name = _writable_parent(namespace, path)
    existing = namespace.child(parent, name)
    if existing is not None and existing.is_folder:
        raise HttpError(405, f"{name!r} is a folder; a PUT cannot replace it")
    _check_conditions(request, existing)
    declared_text = request.headers.get("content-length")
    if declared_text is not None and not declared_text.strip().isdigit():
        raise HttpError(400, f"malformed Content-Length {declared_text!r}")
    declared = int(declared_text) if declared_text is not None else 0
    assert parent.item is not None
    store.check_upload(parent.item, name, declared)  # names and quota, before any byte is read
    used, quota = store.quota_of(parent.item.cloud_folder_id)
    allowance = None if quota is None else quota - used + (existing.item.size if existing and existing.item else 0)
    staged = store.stage()
    try:
        async for chunk in request.stream():
            await staged.write(chunk)
            if allowance is not None and staged.size > allowance:
                raise DavError(507, "User is out of quota", "quota-not-exceeded")
        if declared_text is not None and staged.size != declared:
            # The server's HTTP layer frames the body by Content-Length; never trust that blindly.
            raise HttpError(400, f"Content-Length said {declared} bytes, {staged.size} arrived")
        item, replaced = await staged.commit(lambda blob: _put_blob(store, namespace, request, path, blob, staged.size))
    finally:
        staged.abort()
    headers = [("etag", etag_of(item))]
    return _no_content(headers) if replaced else Response(201, b"", headers=headers)


def _put_blob(store: Store, namespace: Namespace, request: Request, path: list[str], blob: str,
              size: int) -> tuple[Item, bool]:
    """The file at ``path`` becomes ``blob``; returns it and whether it replaced one."""
    parent, name = _writable_parent(namespace, path)  # it may have gone while the body arrived
    assert parent.item is not None
    now_there = namespace.child(parent, name)
    _check_conditions(request, now_there)  # and the target may have changed: a slow body must not win a race
    return store.put_file(parent.item, name, blob, size), now_there is not None


async def _mkcol(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    if await _has_body(request):
        raise HttpError(415, "MKCOL with a request body is not supported")
    try:
        namespace.resolve(path)
    except NotFound:
        pass
    else:
        raise HttpError(405, "the resource already exists")
    parent, name = _writable_parent(namespace, path)
    assert parent.item is not None
    try:
        store.make_folder(parent.item, name)
    except Exists:
        raise HttpError(405, "the resource already exists") from None
    return Response(201, b"")


async def _delete(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    node = _resolve(namespace, path)
    if node.is_folder:
        _depth(request, ("infinity",), "infinity")  # RFC 4918 §9.6.1
    if not node.writable or node.item is None:
        raise HttpError(403, f"{'/'.join(node.path) or 'the root'} is read-only")
    if node.item.parent_id is None:
        raise HttpError(403, "a cloud folder cannot be deleted")
    _check_conditions(request, node)
    store.delete(node.item)
    return _no_content()


async def _copy(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    return await _transfer(store, namespace, request, path, move=False)


async def _move(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    return await _transfer(store, namespace, request, path, move=True)


async def _transfer(store: Store, namespace: Namespace, request: Request, path: list[str], *, move: bool) -> Response:
    verb = "moved" if move else "copied"
    target = _destination(request, namespace.context)
    overwrite = (request.headers.get("overwrite") or "T").strip().upper()
    if overwrite not in ("T", "F"):
        raise HttpError(400, "Overwrite must be T or F")
    source = _resolve(namespace, path)
    depth = _depth(request, ("infinity",) if move else ("0", "infinity"), "infinity")
    if source.item is None or source.snapshots_of is not None:
        raise HttpError(403, f"{'/'.join(source.path) or 'the root'} cannot be {verb}")
    if move and not source.writable:
        raise HttpError(403, f"{'/'.join(source.path)} is read-only")
    if move and source.item.parent_id is None:
        raise HttpError(403, "a cloud folder cannot be moved")
    source_keys = [store.name_key(name) for name in source.path]
    target_keys = [store.name_key(name) for name in target]
    if target == list(source.path) or (not move and target_keys == source_keys):
        raise HttpError(403, "the source and the destination are the same")
    if source.is_folder and len(target_keys) > len(source_keys) and target_keys[: len(source_keys)] == source_keys:
        raise HttpError(403, f"a folder cannot be {verb} into itself")
    _check_conditions(request, source)
    parent, name = _writable_parent(namespace, target)
    assert parent.item is not None
    occupant = namespace.child(parent, name)
    # A case-only rename finds the source itself at the destination: that is no overwrite.
    same_item = (
        occupant is not None
        and occupant.item is not None
        and (occupant.item.id, occupant.item.snapshot_id) == (source.item.id, source.item.snapshot_id)
    )
    replacing = occupant is not None and not same_item
    if replacing:
        assert occupant is not None
        if overwrite == "F":
            raise HttpError(412, f"{name!r} exists and Overwrite is F")
        if not occupant.writable or occupant.item is None:
            raise HttpError(403, f"{name!r} is read-only")
    if move:
        store.move(source.item, parent.item, name, replace=replacing)
    elif source.is_folder and depth == "0":
        if replacing and occupant is not None and occupant.item is not None:
            store.delete(occupant.item)
        store.make_folder(parent.item, name)
    else:
        store.copy(source.item, parent.item, name, replace=replacing)
    return _no_content() if replacing else Response(201, b"")


_HANDLERS: dict[str, Handler] = {
    "OPTIONS": _options,
    "PROPFIND": _propfind,
    "PROPPATCH": _proppatch,
    "PUT": _put,
    "MKCOL": _mkcol,
    "DELETE": _delete,
    "COPY": _copy,
    "MOVE": _move,
}
