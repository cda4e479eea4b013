"""WebDAV class 1 on ``{ctx}/webdav`` (RFC 4918) for stock clients (rclone, davfs2).

``GET``/``HEAD`` are served by :mod:`portal.http.transfer`; this module answers
the other verbs.
"""

from __future__ import annotations

from portal.http.asgi import HttpError, Request, Response
from portal.http.namespace import Namespace
from portal.store import Store

ALLOWED = "OPTIONS, GET, HEAD"


async def handle(store: Store, namespace: Namespace, request: Request, path: list[str]) -> Response:
    if request.method == "OPTIONS":
        return Response(200, b"", headers=[("dav", "1"), ("allow", ALLOWED), ("ms-author-via", "DAV")])
    raise HttpError(405, f"{request.method} is not supported", headers=[("allow", ALLOWED)])
