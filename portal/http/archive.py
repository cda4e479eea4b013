"""``POST {ctx}/folders/folders/<uid>``: a folder or a selection as one ZIP stream.

The form field ``inputXML`` holds ``{paths: [...], snapshot, password,
portalName, showDeleted}``.  The SDK sends selected items percent-encoded but a
whole folder as a raw path with literal spaces; both spellings resolve here.

The archive is produced while it is sent: entries are stored (no compression,
which costs CPU and rarely helps with office files and media), written with
ZIP64 data descriptors, and file content is read off the event loop a
megabyte at a time, so a ZIP of gigabytes needs no temporary file and no
memory beyond one chunk.

Archives of many small files are what clients ask for to save a request per
file, so their cost per file matters: a file of at most ``INLINE_READ`` bytes
is read in one call on the event loop (a page-cached read of that size takes
microseconds, less than a hop to a worker thread and back), and the stream
is sent in pieces of about ``SEND_CHUNK`` rather than two per entry, so a
hundred files of 4 KiB are a couple of sends (about 26 full TLS records),
not two hundred small ones.
"""

from __future__ import annotations

import time
import urllib.parse
import zipfile
from collections.abc import AsyncIterator

import trio

from portal.http.asgi import HttpError, Request, Response
from portal.http.browse import list_page
from portal.http.execute import path_of_href
from portal.http.namespace import Namespace, Node
from portal.store import NotFound, Store
from wire import ctera_xml

READ_CHUNK = 1 << 20
MAX_FORM = 1 << 20
INLINE_READ = 64 << 10
SEND_CHUNK = 256 << 10


class _Sink:
    """A write-only, non-seekable file object that zipfile writes into."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def buffered(self) -> int:
        """How many bytes are written and not yet drained."""
        return len(self._buffer)

    def drain(self) -> bytes:
        data, self._buffer = bytes(self._buffer), bytearray()
        return data


async def download_zip(store: Store, namespace: Namespace, request: Request) -> Response:
    form = urllib.parse.parse_qs((await request.body(MAX_FORM)).decode("utf-8", "replace"))
    try:
        spec = ctera_xml.as_obj(ctera_xml.decode((form.get("inputXML") or [""])[0]))
    except ctera_xml.XmlDecodeError as exc:
        raise HttpError(400, f"malformed inputXML: {exc}") from None
    if spec is None:
        raise HttpError(400, "the ZIP request has no inputXML")
    selected: list[Node] = []
    for value in ctera_xml.as_list(spec.get("paths")):
        try:
            selected.append(namespace.resolve(path_of_href(ctera_xml.as_str(value) or "", namespace.context)))
        except NotFound:
            raise HttpError(404, "Resource does not exist") from None
        if not selected[-1].readable:
            raise HttpError(403, f"the share grants {selected[-1].permission} access: no downloads")
    if not selected:
        raise HttpError(400, "the ZIP request selects nothing")
    return Response(
        200,
        _zip_stream(store, namespace, selected),
        content_type="application/zip",
        headers=[("content-disposition", 'attachment; filename="download.zip"')],
    )


async def _zip_stream(store: Store, namespace: Namespace, selected: list[Node]) -> AsyncIterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for node in selected:
            # A single folder is archived with its contents at the top level.
            top = len(node.path) if (len(selected) == 1 and node.is_folder) else len(node.path) - 1
            async for chunk in _add(store, namespace, archive, sink, node, top):
                yield chunk
    yield sink.drain()


async def _add(
    store: Store, namespace: Namespace, archive: zipfile.ZipFile, sink: _Sink, node: Node, top: int
) -> AsyncIterator[bytes]:
    arcname = "/".join(node.path[top:])
    mtime = max(time.gmtime(node.item.mtime if node.item else time.time())[:6], (1980, 1, 1, 0, 0, 0))
    if node.is_folder:
        if arcname:
            archive.writestr(zipfile.ZipInfo(arcname + "/", date_time=mtime), b"")
        start = 0
        while True:
            page, more = list_page(namespace, node, start, 500, False)
            for child in page:
                async for chunk in _add(store, namespace, archive, sink, child, top):
                    yield chunk
            if not more:
                break
            start += len(page)
        return
    assert node.item is not None
    info = zipfile.ZipInfo(arcname, date_time=mtime)
    if node.item.size <= INLINE_READ:
        with open(store.content_path(node.item), "rb") as small, archive.open(info, "w", force_zip64=True) as entry:
            entry.write(small.read())
        if sink.buffered >= SEND_CHUNK:
            yield sink.drain()
        else:
            await trio.lowlevel.checkpoint()  # an archive of tiny files must not hold the loop to itself
        return
    file = await trio.open_file(store.content_path(node.item), "rb")
    try:
        with archive.open(info, "w", force_zip64=True) as entry:
            while chunk := await file.read(READ_CHUNK):
                entry.write(chunk)
                yield sink.drain()
    finally:
        await file.aclose()
    yield sink.drain()
