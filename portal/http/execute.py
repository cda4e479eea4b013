"""``POST {ctx}/api``: the ``execute`` envelope and its method registry.

A request body is one XML object ``{type, name, param}``; ``name`` selects a
handler registered with :func:`method`.  A handler receives the decoded
``param`` and returns the value to encode as the reply.  Refusals are raised as
:class:`~portal.http.asgi.HttpError` (non-2xx with an ``{rc, msg}`` body); the
in-band error conventions of individual methods (error-code strings,
``errorType`` fields, failed tasks) are the handlers' own business.
"""

from __future__ import annotations

import inspect
import urllib.parse
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portal.http.asgi import HttpError, Request, unquote_name, xml_response
from portal.http.namespace import Namespace
from portal.http.sessions import Session
from wire import ctera_xml

if TYPE_CHECKING:
    from portal.http.app import PortalApp

#: Larger execute bodies are refused; real ones are a few KiB.
MAX_EXECUTE_BODY = 1 << 20

Handler = Callable[["Call", ctera_xml.Value], "ctera_xml.Value | Awaitable[ctera_xml.Value]"]
_METHODS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    """Register the handler of the execute method ``name``."""

    def register(handler: Handler) -> Handler:
        _METHODS[name] = handler
        return handler

    return register


@dataclass
class Call:
    """Everything a method handler may use."""

    app: PortalApp
    request: Request
    session: Session
    namespace: Namespace

    @property
    def context(self) -> str:
        return self.session.context

    def path_of(self, href: Any) -> list[str]:
        """Namespace path of an href parameter (encoded, raw, or an absolute URL)."""
        return path_of_href(ctera_xml.as_str(href) or "", self.context)


def path_of_href(href: str, context: str) -> list[str]:
    """Split an href into decoded names below ``{context}/webdav``.

    Accepts the encoded form, the raw form the SDK sends for whole-folder ZIPs,
    and absolute URLs (upload ``fullpath``).  Anything outside the caller's
    WebDAV root is refused with 400.
    """
    if "://" in href:
        try:
            href = urllib.parse.urlsplit(href).path
        except ValueError:  # e.g. an unclosed IPv6 bracket
            raise HttpError(400, f"malformed URL {href[:200]!r}") from None
    prefix = f"{context}/webdav"
    if not (href == prefix or href.startswith(prefix + "/")):
        raise HttpError(400, f"path {href!r} is outside {prefix}")
    names = []
    for part in href[len(prefix) :].split("/"):
        if part:
            names.append(unquote_name(part))
    return names


async def execute(call_factory: Callable[[], Call], request: Request, allowed: Collection[str] | None = None) -> Any:
    """Decode the envelope, run its method (one of ``allowed`` if given), encode the reply."""
    body = await request.body(MAX_EXECUTE_BODY)
    try:
        envelope = ctera_xml.as_obj(ctera_xml.decode(body))
    except ctera_xml.XmlDecodeError as exc:
        raise HttpError(400, f"malformed request: {exc}") from None
    if envelope is None:
        raise HttpError(400, "empty request")
    kind = ctera_xml.as_str(envelope.get("type"))
    name = ctera_xml.as_str(envelope.get("name"))
    if kind != "user-defined":
        raise HttpError(400, f"unsupported call type {kind!r}")
    request.scope["portalfs.method"] = name  # named in the request log line
    handler = _METHODS.get(name or "") if allowed is None or name in allowed else None
    if handler is None:
        raise HttpError(400, f"unknown method {name!r}")
    try:
        result = handler(call_factory(), envelope.get("param"))
        if inspect.isawaitable(result):
            result = await result
    except ctera_xml.XmlDecodeError as exc:
        raise HttpError(400, f"bad parameter for {name}: {exc}") from None
    return xml_response(result)
