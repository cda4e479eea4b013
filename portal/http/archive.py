"""``POST {ctx}/folders/folders/<uid>``: a folder or a selection as one ZIP stream.

The form field ``inputXML`` holds ``{paths: [...], snapshot, password,
portalName, showDeleted}``.  The SDK sends selected items percent-encoded but a
whole folder as a raw path with literal spaces; both spellings resolve here.

The archive is produced while it is sent: entries are stored (no compression,
which costs CPU and rarely helps with office files and media), a large
file's content is read off the event loop a megabyte at a time and followed
by a ZIP64 data descriptor, so a ZIP of gigabytes needs no temporary file and no
memory beyond one chunk, or one run of small files (at most 128 of 64 KiB: 8 MiB).

Archives of many small files are what clients ask for to save a request per
file, so their cost per file matters: files of at most ``SMALL_FILE`` bytes
are read in runs of up to ``SMALL_RUN``, in one trip to a worker thread that
asks the kernel for all of them before it reads the first (on a cold disk,
one at a time, each would be a seek the event loop waits for), and the stream
is sent in pieces of about ``SEND_CHUNK`` rather than two per entry, so a
hundred files of 4 KiB are a couple of sends (about 26 full TLS records),
not two hundred small ones.  The format is written by ``zipstream``, at a
few microseconds an entry.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path
from typing import cast

import trio

from portal.http.asgi import HttpError, Request, Response
from portal.http.browse import list_page
from portal.http.execute import path_of_href
from portal.http.namespace import Namespace, Node
from portal.http.zipstream import ZipStream
from portal.store import Item, NotFound, Store
from wire import ctera_xml

READ_CHUNK = 1 << 20
MAX_FORM = 1 << 20
SMALL_FILE = 64 << 10
SEND_CHUNK = 256 << 10
SMALL_RUN = 128  # small files read in one trip to a worker thread


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
    archiver = _Archiver(store, namespace)
    whole_folder = len(selected) == 1 and selected[0].is_folder  # archived with its contents at the top level
    async for chunk in archiver.add([(node, len(node.path) - (0 if whole_folder else 1)) for node in selected]):
        yield chunk
    yield archiver.finish()


class _Archiver:
    """One reply's archive: entries gather in ``pending`` and leave in sends of about ``SEND_CHUNK``."""

    def __init__(self, store: Store, namespace: Namespace) -> None:
        self.store = store
        self.namespace = namespace
        self.archive = ZipStream()
        self.pending = bytearray()

    async def add(self, nodes: list[tuple[Node, int]]) -> AsyncIterator[bytes]:
        """Add each node (a folder with everything in it), named by its path without the first ``top``
        names; yield each send as it fills.  Runs of small files are read together."""
        run: list[tuple[Node, int]] = []
        for node, top in nodes:
            if node.item is not None and not node.is_folder and node.item.size <= SMALL_FILE:
                run.append((node, top))
                if len(run) == SMALL_RUN:
                    async for chunk in self._add_small(run):
                        yield chunk
                    run = []
                continue
            async for chunk in self._add_small(run):
                yield chunk
            run = []
            if node.is_folder:
                async for chunk in self._add_folder(node, top):
                    yield chunk
            else:
                async for chunk in self._add_large(node, top):
                    yield chunk
        async for chunk in self._add_small(run):
            yield chunk

    def finish(self) -> bytes:
        self.pending += self.archive.finish()
        return self._taken()

    async def _add_folder(self, node: Node, top: int) -> AsyncIterator[bytes]:
        if len(node.path) > top:
            self.pending += self.archive.folder(_arcname(node, top), _mtime(node))
        start = 0
        while True:
            page, more = list_page(self.namespace, node, start, 500, False)
            async for chunk in self.add([(child, top) for child in page]):
                yield chunk
            if not more:
                return
            start += len(page)

    async def _add_small(self, run: list[tuple[Node, int]]) -> AsyncIterator[bytes]:
        if not run:
            return
        items = [node.item for node, _ in run]
        assert all(item is not None for item in items)  # add() queues files only
        paths = self.store.content_paths(cast(list[Item], items))
        contents = await trio.to_thread.run_sync(_read_small_files, paths)
        for (node, top), data in zip(run, contents, strict=True):
            self.pending += self.archive.file(_arcname(node, top), _mtime(node), data)
            if len(self.pending) >= SEND_CHUNK:
                yield self._taken()

    async def _add_large(self, node: Node, top: int) -> AsyncIterator[bytes]:
        """A file sent as it is read, after whatever was pending."""
        assert node.item is not None
        self.pending += self.archive.begin_file(_arcname(node, top), _mtime(node))
        yield self._taken()
        file = await trio.open_file(self.store.content_path(node.item), "rb")
        try:
            while chunk := await file.read(READ_CHUNK):
                yield self.archive.file_data(chunk)
        finally:
            await file.aclose()
        self.pending += self.archive.end_file()

    def _taken(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data


def _arcname(node: Node, top: int) -> str:
    return "/".join(node.path[top:])


def _mtime(node: Node) -> float:
    return node.item.mtime if node.item else time.time()


def _read_small_files(paths: list[Path]) -> list[bytes]:
    """Each file's content.  The kernel is told of all of them before the first is read, so a cold
    disk fetches them together rather than one seek after another.  (Told through a descriptor
    of its own each, closed at once: a run's files are never open together.)"""
    for path in paths:
        with suppress(OSError):  # only a hint: the read below reports what is wrong
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)
    contents = []
    for path in paths:
        with open(path, "rb", buffering=0) as small:
            contents.append(small.readall())
    return contents
