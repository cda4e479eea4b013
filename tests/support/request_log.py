"""Count what a client asked of the portal, from the portal's own request log.

The reference portal writes one debug line per request (``-vv``)::

    ... DEBUG portal.http: POST /ServicesPortal/api [fetchResources] -> 200, 5120 bytes, 1.2ms
    ... DEBUG portal.http: GET /ServicesPortal/webdav/My Files/a.bin -> 206, 1048576 bytes, 3.4ms

so a test can assert "listing pages only" or "0 content bytes" from the
server's side, independently of the client's own counters.  A reply with a
``Content-Length`` logs what it announced; a stream without one (an archive)
what it sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.support.portal_process import PortalProcess

_LINE = re.compile(r"portal\.http: (?P<verb>[A-Z]+) (?P<path>.*?)(?: \[(?P<method>\w+)\])? -> (?P<status>\d+), (?P<bytes>\d+) bytes")


@dataclass(frozen=True)
class LoggedRequest:
    verb: str
    path: str
    method: str | None
    status: int
    bytes: int

    @property
    def is_content(self) -> bool:
        """A file's bytes (GET) or several files' bytes as one archive (POST .../folders/folders/<uid>)."""
        return (self.verb == "GET" and "/webdav/" in self.path) or self.is_archive

    @property
    def is_archive(self) -> bool:
        return self.verb == "POST" and "/folders/folders/" in self.path


class RequestLog:
    def __init__(self, portal: PortalProcess) -> None:
        self._portal = portal
        self._start = 0

    def mark(self) -> None:
        """Forget everything logged so far."""
        self._start = len(self._portal.log())

    def since(self) -> list[LoggedRequest]:
        found = []
        for match in _LINE.finditer(self._portal.log()[self._start :]):
            found.append(LoggedRequest(match["verb"], match["path"], match["method"], int(match["status"]),
                                       int(match["bytes"])))
        return found

    def content_bytes(self) -> int:
        return sum(r.bytes for r in self.since() if r.is_content)

    def calls(self, method: str) -> int:
        return sum(1 for r in self.since() if r.method == method)
