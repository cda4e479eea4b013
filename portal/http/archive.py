"""``POST {ctx}/folders/folders/<uid>``: a folder or a selection as one ZIP stream.

The form field ``inputXML`` holds ``{paths: [...], snapshot, password,
portalName, showDeleted}``.  The SDK sends selected items percent-encoded but a
whole folder as a raw path with literal spaces; both spellings resolve here.

The archive is produced while it is sent: entries are stored (no compression,
which costs CPU and rarely helps with office files and media), a large
file's content is read off the event loop a megabyte at a time and followed
by a ZIP64 data descriptor, so a ZIP of gigabytes needs no temporary file and no
memory beyond one chunk.

Archives of many small files are what clients ask for to save a request per
file, so their cost per file matters: a file of at most ``INLINE_READ`` bytes
is read in one call on the event loop (a page-cached read of that size takes
microseconds, less than a hop to a worker thread and back), and the stream
is sent in pieces of about ``SEND_CHUNK`` rather than two per entry, so a
hundred files of 4 KiB are a couple of sends (about 26 full TLS records),
not two hundred small ones.  The format is written by ``zipstream``, at a
few microseconds an entry.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import AsyncIterator

import trio

from portal.http.asgi import HttpError, Request, Response
from portal.http.browse import list_page
from portal.http.execute import path_of_href
from portal.http.namespace import Namespace, Node
from portal.http.zipstream import ZipStream
from portal.store import NotFound, Store
from wire import ctera_xml

READ_CHUNK = 1 << 20
MAX_FORM = 1 << 20
INLINE_READ = 64 << 10
SEND_CHUNK = 256 << 10
CHECKPOINT_EVERY = 16  # small files read between two checkpoints (~20 µs each)


async def download_zip(store: Store, namespace: Namespace, request: Request) -> Response:
    form = urllib.parse.parse_qs((await request.body(MAX_FORM)).decode("utf-8", "replace"))
    try:
        spec = ctera_xml.as_obj(ctera_xml.decode((form.get("inputXML") or [""])[0]))
    except ctera_xml.XmlDecodeError as exc:
        raise HttpError(400, f"malformed inputXML: {exc}") from None
    if spec is None:
        raise HttpError(400, "the ZIP request has no inputXML")
    selected: list[Node] = []
    walked: dict[tuple[str, ...], Node] = {}
    for value in ctera_xml.as_list(spec.get("paths")):
        try:
            selected.append(namespace.resolve(path_of_href(ctera_xml.as_str(value) or "", namespace.context),
                                              walked=walked))
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
    archive = ZipStream()
    pending = bytearray()  # small entries gathered into sends of about SEND_CHUNK
    for node in selected:
        # A single folder is archived with its contents at the top level.
        top = len(node.path) if (len(selected) == 1 and node.is_folder) else len(node.path) - 1
        async for chunk in _add(store, namespace, archive, pending, node, top):
            yield chunk
    pending += archive.finish()
    yield bytes(pending)


async def _add(
    store: Store, namespace: Namespace, archive: ZipStream, pending: bytearray, node: Node, top: int
) -> AsyncIterator[bytes]:
    """Add ``node`` (a folder with everything in it) to ``archive``; yield full sends as they fill.

    Small files go into ``pending``; a large one is sent as it is read, after
    whatever was pending.
    """
    arcname = "/".join(node.path[top:])
    mtime = node.item.mtime if node.item else time.time()
    if node.is_folder:
        if arcname:
            pending += archive.folder(arcname, mtime)
        start = 0
        while True:
            page, more = list_page(namespace, node, start, 500, False)
            for child in page:
                async for chunk in _add(store, namespace, archive, pending, child, top):
                    yield chunk
            if not more:
                break
            start += len(page)
        return
    assert node.item is not None
    if node.item.size <= INLINE_READ:
        with open(store.content_path(node.item), "rb") as small:
            pending += archive.file(arcname, mtime, small.read())
        if len(pending) >= SEND_CHUNK:
            yield _taken(pending)
        elif archive.entries % CHECKPOINT_EVERY == 0:
            await trio.lowlevel.checkpoint()  # an archive of tiny files must not hold the loop to itself
        return
    pending += archive.begin_file(arcname, mtime)
    yield _taken(pending)
    file = await trio.open_file(store.content_path(node.item), "rb")
    try:
        while chunk := await file.read(READ_CHUNK):
            yield archive.file_data(chunk)
    finally:
        await file.aclose()
    pending += archive.end_file()


def _taken(pending: bytearray) -> bytes:
    """What ``pending`` holds, leaving it empty."""
    data = bytes(pending)
    pending.clear()
    return data
