"""Moving content: WebDAV ``GET``/``HEAD`` downloads and multipart uploads.

Downloads stream the blob in :data:`READ_CHUNK` pieces read off the event loop
and honour one byte range (``206`` with ``Content-Range``; ``416`` for a range
that starts past the end or cannot be parsed; several ranges are answered with
the whole file, which RFC 9110 allows).  Every response carries a strong
``ETag`` made of the item id and its version id, so it changes with every new
version and a client can key cached blocks on it; ``If-None-Match`` and
``If-Range`` use it.

Uploads (``POST {ctx}/upload/folders/<cloudFolderUid>``) are parsed while they
arrive: the form fields that come first (``name``, ``Filename``, ``fullpath``,
``fileSize``) are checked before the content is accepted, and the content
goes straight into a staged blob, so a 2 GiB upload never sits in memory.  The
reply is always the ``{rc, msg}`` object the vendor SDK parses; ``rc`` is 0 on
success.
"""

from __future__ import annotations

import email.utils
import errno
import mimetypes
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import trio
from python_multipart.multipart import MultipartParser, parse_options_header

from portal.http.asgi import HttpError, Request, Response, xml_response
from portal.http.execute import path_of_href
from portal.http.namespace import Namespace, Node
from portal.store import Item, NotFound, QuotaExceeded, Store, StoreError
from portal.store.blobs import StagedBlob
from wire.ctera_xml import obj

READ_CHUNK = 1 << 20
MAX_FORM_FIELD = 64 << 10

_RANGE = re.compile(r"^\s*([0-9]*)\s*-\s*([0-9]*)\s*$")


# ------------------------------------------------------------------ download


def etag_of(item: Item) -> str:
    return f'"{item.id}-{item.version_id}"'


def last_modified_of(item: Item) -> str:
    return email.utils.formatdate(item.mtime, usegmt=True)


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one inclusive byte range ``header`` asks for, or None for the whole file."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None  # an unknown unit is ignored (RFC 9110 §14.2)
    if "," in spec:
        return None  # several ranges: the whole file is a valid answer
    match = _RANGE.match(spec)
    if match is None or match.group(0).strip() == "-":
        raise RangeNotSatisfiable(f"malformed Range header {header!r}")
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable("empty suffix range")
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        raise RangeNotSatisfiable(f"range end before start in {header!r}")
    if start >= size:
        raise RangeNotSatisfiable(f"range starts at {start}, file has {size} bytes")
    return start, min(end, size - 1)


async def download(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    try:
        node = namespace.resolve(path)
    except NotFound:
        raise HttpError(404, "Resource does not exist") from None
    if node.is_folder or node.item is None:
        raise HttpError(405, "a folder has no content to download; list it instead")
    if not node.readable:
        raise HttpError(403, f"the share grants {node.permission} access: no downloads")
    item = node.item
    size = item.size
    headers = [
        ("etag", etag_of(item)),
        ("last-modified", last_modified_of(item)),
        ("accept-ranges", "bytes"),
        ("cache-control", "private, no-cache"),
    ]
    if _matches_etag(request.headers.get("if-none-match"), item):
        # A 304 may only announce the length the 200 would have had (RFC 9110 §15.4.5).
        return Response(304, b"", headers=headers, content_length=size)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted is not None and if_range is not None and if_range.strip() != etag_of(item):
        wanted = None  # the client's copy is stale: send it the whole new version
    try:
        byte_range = parse_range(wanted, size)
    except RangeNotSatisfiable as exc:
        raise HttpError(416, str(exc), headers=[("content-range", f"bytes */{size}")]) from None
    content = store.content_path(item)
    if byte_range is None:
        start, length, status = 0, size, 200
    else:
        start, end = byte_range
        length, status = end - start + 1, 206
        headers.append(("content-range", f"bytes {start}-{end}/{size}"))
    body = stream_file(content, start, length) if request.method != "HEAD" else b""
    return Response(
        status, body, content_type=_content_type(item.name), headers=headers, content_length=length
    )


def _matches_etag(header: str | None, item: Item) -> bool:
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag_of(item) in tags


async def stream_file(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of ``path`` from ``start``, read off the event loop."""
    file = await trio.open_file(path, "rb")
    try:
        await file.seek(start)
        remaining = length
        while remaining > 0:
            chunk = await file.read(min(READ_CHUNK, remaining))
            if not chunk:
                raise OSError(errno.EIO, f"{path.name} is shorter than recorded")
            remaining -= len(chunk)
            yield chunk
    finally:
        await file.aclose()


def _content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


# -------------------------------------------------------------------- upload


def upload_reply(rc: int, msg: str) -> Response:
    return xml_response(obj(None, rc=rc, msg=msg))


@dataclass
class _Form:
    """The multipart form as it arrives: small fields in memory, ``file`` staged."""

    fields: dict[str, bytearray] = field(default_factory=dict)
    current: str | None = None
    current_is_file: bool = False
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    disposition: bytes = b""
    file_chunks: list[bytes] = field(default_factory=list)
    file_seen: bool = False
    #: The closing boundary arrived.  The parser's ``finalize`` accepts a body
    #: that stops anywhere, so this is what tells a complete upload from a cut one.
    ended: bool = False

    def callbacks(self) -> dict:
        def on_part_begin() -> None:
            self.disposition = b""
            self.header_field.clear()
            self.header_value.clear()

        def on_header_field(data: bytes, start: int, end: int) -> None:
            self.header_field += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            self.header_value += data[start:end]

        def on_header_end() -> None:
            if self.header_field.lower() == b"content-disposition":
                # Raw bytes: parse_options_header would re-encode a str as Latin-1, which
                # fails for a UTF-8 file name outside it (日本.txt).
                self.disposition = bytes(self.header_value)
            self.header_field.clear()
            self.header_value.clear()

        def on_headers_finished() -> None:
            _, options = parse_options_header(self.disposition)
            name = options.get(b"name", b"").decode("utf-8", "replace")
            self.current = name
            self.current_is_file = name == "file"
            if self.current_is_file:
                self.file_seen = True
            else:
                self.fields[name] = bytearray()

        def on_part_data(data: bytes, start: int, end: int) -> None:
            if self.current_is_file:
                self.file_chunks.append(bytes(data[start:end]))
            elif self.current is not None:
                value = self.fields[self.current]
                value += data[start:end]
                if len(value) > MAX_FORM_FIELD:
                    raise HttpError(413, f"form field {self.current!r} is too large")

        def on_part_end() -> None:
            self.current = None
            self.current_is_file = False

        def on_end() -> None:
            self.ended = True

        return {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        }

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        if value is None:
            return None
        try:
            return value.decode("utf-8", "strict")
        except UnicodeDecodeError:
            raise _UploadRefused(f"form field {name!r} is not UTF-8") from None

    def declared_size(self) -> int | None:
        """The ``fileSize`` field, if sent; anything but a decimal count is refused."""
        text = (self.text("fileSize") or "").strip()
        if not text:
            return None
        if not (text.isascii() and text.isdigit()):
            raise _UploadRefused(f"fileSize {text[:40]!r} is not a byte count")
        return int(text)


async def upload(store: Store, namespace: Namespace, request: Request, cloud_folder_uid: str | None) -> Response:
    content_type, options = parse_options_header(request.headers.get("content-type") or "")
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise HttpError(400, "an upload must be multipart/form-data with a boundary")
    form = _Form()
    parser = MultipartParser(boundary, form.callbacks())
    staged: StagedBlob | None = None
    target: tuple[Node, str] | None = None
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except HttpError:
                raise
            except Exception as exc:
                raise HttpError(400, f"malformed multipart body: {exc}") from None
            if form.file_seen and target is None:
                target = _check_target(store, namespace, form, cloud_folder_uid)
            if form.file_chunks:
                if staged is None:
                    staged = store.stage()
                for piece in form.file_chunks:
                    await staged.write(piece)
                form.file_chunks.clear()
        parser.finalize()
        if not form.file_seen:
            raise HttpError(400, "the upload has no 'file' part")
        if not form.ended:
            raise HttpError(400, "truncated multipart body: the closing boundary is missing")
        if target is None:
            target = _check_target(store, namespace, form, cloud_folder_uid)
        if staged is None:
            staged = store.stage()
        declared = form.declared_size()
        if declared is not None and declared != staged.size:
            raise _UploadRefused(f"File size mismatch: declared {declared}, received {staged.size}")
        parent, name = target
        folder = parent.item
        assert folder is not None
        await staged.commit(lambda blob: store.put_file(folder, name, blob, staged.size))
        return upload_reply(0, "OK")
    except _UploadRefused as refused:
        message = str(refused)
    except QuotaExceeded as exc:
        message = str(exc) or "User is out of quota"
    except StoreError as exc:
        message = f"{exc.code}: {exc}"
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        message = "No available storage location: the portal's disk is full"
    finally:
        if staged is not None:
            staged.abort()
    # Refused in-band, often before the content arrived: read the rest of it
    # first, or the reply could be lost to a connection reset (Request.discard).
    await request.discard()
    return upload_reply(1, message)


class _UploadRefused(Exception):
    """An upload the portal declines in-band (``rc`` ≠ 0)."""


def _check_target(store: Store, namespace: Namespace, form: _Form, cloud_folder_uid: str | None) -> tuple[Node, str]:
    """Where the upload goes; refused before its content arrives when possible."""
    fullpath = form.text("fullpath")
    if fullpath:
        path = path_of_href(fullpath, namespace.context)
    else:
        raise _UploadRefused("the upload names no fullpath")
    if not path:
        raise _UploadRefused("cannot upload to the root")
    try:
        parent = namespace.resolve(path[:-1])
    except NotFound:
        raise _UploadRefused("Resource does not exist") from None
    if not parent.writable or parent.item is None:
        raise _UploadRefused("the destination folder is read-only")
    if cloud_folder_uid is not None and parent.cloud_folder is not None and str(parent.cloud_folder.id) != cloud_folder_uid:
        raise _UploadRefused(f"the destination is not in cloud folder {cloud_folder_uid}")
    store.check_upload(parent.item, path[-1], form.declared_size() or 0)
    return parent, path[-1]
