"""What the portal holds, seen over the wire: the clock of a write benchmark.

A write through a mount is done when *the portal* has it, not when
``close()`` returns: uploads run in the background.  :class:`PortalState`
is a client of its own (httpx with a session cookie, ``fetchResources``
listings with sizes, like any other portal client), independent of the mounts
being measured, that polls until given files are present with their full
sizes (the reference portal commits an upload only once all of it arrived, so
the right size means complete) and reads a file back to check its bytes.
Paths are relative to alice's ``My Files``.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.bench.harness.mounts import USER
from tests.support import portal_http
from tests.support.portal_process import PortalProcess
from wire import ctera_xml
from wire.ctera_xml import obj

MY_FILES = "My Files"
PAGE = 1000
POLL = 0.05


class PortalState:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def sizes(self, folder: str) -> dict[str, int]:
        """The files directly in ``folder`` with their sizes; empty when the folder does not exist."""
        root = portal_http.href(f"{MY_FILES}/{folder}".rstrip("/"))
        found: dict[str, int] = {}
        start = 0
        while True:
            param = obj("FetchResourcesParam", root=root, depth="1", start=str(start), limit=str(PAGE))
            reply = portal_http.execute(self.http, "fetchResources", param)
            if reply.status_code != 200:
                return found
            answer = ctera_xml.as_obj(ctera_xml.decode(reply.content))
            items = list(ctera_xml.iter_objs(answer.get("items"))) if answer else []
            for item in items:
                if not ctera_xml.as_bool(item.get("isFolder")):
                    found[ctera_xml.as_str(item.get("name")) or ""] = ctera_xml.as_int(item.get("size")) or 0
            if len(items) < PAGE:
                return found
            start += PAGE

    def wait_for_files(self, expected: dict[str, int], *, timeout: float) -> None:
        """Poll until every ``path: size`` of ``expected`` is on the portal with that size.

        Only folders still missing something are listed again, so the polling
        costs about one request per folder and poll (every :data:`POLL` s)."""
        pending: dict[str, dict[str, int]] = {}
        for path, size in expected.items():
            folder, name = posixpath.split(path)
            pending.setdefault(folder, {})[name] = size
        deadline = time.monotonic() + timeout
        while pending:
            for folder in list(pending):
                have = self.sizes(folder)
                want = pending[folder]
                for name in [name for name, size in want.items() if have.get(name) == size]:
                    del want[name]
                if not want:
                    del pending[folder]
            if not pending:
                return
            if time.monotonic() > deadline:
                missing = sum(len(names) for names in pending.values())
                example = next(iter(pending.items()))
                raise TimeoutError(f"{missing} files not on the portal after {timeout:.0f} s "
                                   f"(e.g. in {example[0]!r}: {sorted(example[1])[:3]})")
            time.sleep(POLL)

    def read(self, path: str) -> bytes:
        reply = self.http.get(portal_http.webdav_url(f"{MY_FILES}/{path}"))
        reply.raise_for_status()
        return reply.content

    def sha256(self, path: str) -> str:
        """The digest of the portal's copy, streamed (a large file never sits in memory)."""
        digest = hashlib.sha256()
        with self.http.stream("GET", portal_http.webdav_url(f"{MY_FILES}/{path}")) as reply:
            reply.raise_for_status()
            for chunk in reply.iter_bytes(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()


@contextmanager
def portal_state(portal: PortalProcess) -> Iterator[PortalState]:
    with portal_http.logged_in(portal, USER) as http:
        yield PortalState(http)
