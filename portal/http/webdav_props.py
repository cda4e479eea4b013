"""WebDAV properties: parsing PROPFIND/PROPPATCH bodies and writing 207 multistatus.

The request XML is untrusted: it is parsed with ``defusedxml`` with DTDs
forbidden (so no entity expansion or external references), after the caller
capped its size, and anything that is not the RFC 4918 shape is a 400 with
the reason.  Unknown elements inside the expected ones are ignored, as the RFC
asks, so that extensions of other clients do not fail.

Which properties a node has (everything else is a 404 propstat):

==========================  ===========================================================
``displayname``             the last path component (empty for the root)
``resourcetype``            ``<D:collection/>`` for folders, empty for files
``getcontentlength``        files only: the current version's size
``getcontenttype``          files only: guessed from the name, as GET answers it
``getetag``                 files only: exactly the ``ETag`` GET sends
``getlastmodified``         store items (RFC 1123, as GET's ``Last-Modified``)
``creationdate``            store items; the store records no creation time, so it is
                            the modification time (RFC 3339)
``quota-used-bytes``        collections of one owner (RFC 4331): bytes of live
                            content of that user — quotas are per user, so every
``quota-available-bytes``   collection of a user reports the same pair; available is
                            min(quota − used, free disk), free disk when unlimited
==========================  ===========================================================

Virtual folders (the root, ``Users``) have no times.  The admin root and
``Users`` have no owner and so no quota.  Following RFC 4331 the quota
properties are not part of ``allprop`` (they cost a query); ``propname`` lists
them and a ``prop`` request gets them.  ``getetag`` is not offered on folders
because GET on a folder has no representation (405), so no ETag to agree with.

The multistatus is built once, in memory, in one synchronous pass: the store
never yields, so no other request can change the folder between pages and the
listing is a consistent picture of one instant.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from portal.http.asgi import HttpError
from portal.http.namespace import ROOT, Namespace, Node
from portal.http.transfer import etag_of, last_modified_of
from portal.store import Store

DAV = "DAV:"
PropName = tuple[str, str]  # (namespace URI, local name)

DISPLAYNAME: PropName = (DAV, "displayname")
RESOURCETYPE: PropName = (DAV, "resourcetype")
GETCONTENTLENGTH: PropName = (DAV, "getcontentlength")
GETCONTENTTYPE: PropName = (DAV, "getcontenttype")
GETETAG: PropName = (DAV, "getetag")
GETLASTMODIFIED: PropName = (DAV, "getlastmodified")
CREATIONDATE: PropName = (DAV, "creationdate")
QUOTA_USED: PropName = (DAV, "quota-used-bytes")
QUOTA_AVAILABLE: PropName = (DAV, "quota-available-bytes")
QUOTA_PROPS = frozenset({QUOTA_USED, QUOTA_AVAILABLE})
#: Every live property this server knows; none of them can be changed.
LIVE_PROPS = frozenset(
    {DISPLAYNAME, RESOURCETYPE, GETCONTENTLENGTH, GETCONTENTTYPE, GETETAG, GETLASTMODIFIED, CREATIONDATE}
) | QUOTA_PROPS

STATUS_TEXT = {200: "OK", 403: "Forbidden", 404: "Not Found", 424: "Failed Dependency"}
XML_CONTENT_TYPE = "application/xml; charset=utf-8"


# ------------------------------------------------------------ request bodies


@dataclass(frozen=True)
class PropRequest:
    """What a PROPFIND asks for; ``names`` are the props of ``prop`` or allprop's ``include``."""

    kind: Literal["allprop", "propname", "prop"]
    names: tuple[PropName, ...] = ()


def _parse(body: bytes, root_tag: str) -> Element:
    try:
        root = safe_et.fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise HttpError(400, f"malformed XML request body: {exc}") from None
    if root.tag != f"{{{DAV}}}{root_tag}":
        raise HttpError(400, f"the request body must be a DAV:{root_tag} element, not {root.tag!r}")
    return root


def _name_of(element: Element) -> PropName:
    tag = element.tag
    if not isinstance(tag, str):  # comments and processing instructions
        raise HttpError(400, "a property name must be an element")
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _prop_names(container: Element) -> tuple[PropName, ...]:
    names: dict[PropName, None] = {}  # ordered and without repeats
    for child in container:
        if isinstance(child.tag, str):
            names[_name_of(child)] = None
    return tuple(names)


def parse_propfind(body: bytes) -> PropRequest:
    """The PROPFIND body; an empty body means ``allprop`` (RFC 4918 §9.1)."""
    if not body.strip():
        return PropRequest("allprop")
    root = _parse(body, "propfind")
    kinds = {child.tag: child for child in root if child.tag in (f"{{{DAV}}}allprop", f"{{{DAV}}}propname", f"{{{DAV}}}prop")}
    include = root.find(f"{{{DAV}}}include")
    if len(kinds) != 1:
        raise HttpError(400, "DAV:propfind must hold exactly one of allprop, propname or prop")
    tag, element = next(iter(kinds.items()))
    if tag == f"{{{DAV}}}allprop":
        return PropRequest("allprop", _prop_names(include) if include is not None else ())
    if tag == f"{{{DAV}}}propname":
        return PropRequest("propname")
    return PropRequest("prop", _prop_names(element))


def parse_proppatch(body: bytes) -> tuple[PropName, ...]:
    """The names a PROPPATCH sets or removes, in document order."""
    root = _parse(body, "propertyupdate")
    names: dict[PropName, None] = {}
    for action in root:
        if action.tag not in (f"{{{DAV}}}set", f"{{{DAV}}}remove"):
            continue
        for prop in action.findall(f"{{{DAV}}}prop"):
            names.update(dict.fromkeys(_prop_names(prop)))
    if not names:
        raise HttpError(400, "DAV:propertyupdate names no property to set or remove")
    return tuple(names)


# ----------------------------------------------------------------- values


def content_type_of(name: str) -> str:
    """The media type GET announces for a file of this name."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def _rfc3339(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PropertySource:
    """The live properties of nodes, for one request.

    Quota figures are per owner and cost a scan of the owner's items, so they
    are computed at most once per owner per request; free disk space once.
    """

    def __init__(self, store: Store, namespace: Namespace) -> None:
        self._store = store
        self._namespace = namespace
        self._usage: dict[int, tuple[int, int | None]] = {}
        self._free: int | None = None

    def values(self, node: Node, *, with_quota: bool) -> dict[PropName, str]:
        """Each property ``node`` has, mapped to its XML content (already escaped)."""
        item = node.item
        values = {
            DISPLAYNAME: escape(node.name),
            RESOURCETYPE: "<D:collection/>" if node.is_folder else "",
        }
        if item is not None:
            values[GETLASTMODIFIED] = last_modified_of(item)
            values[CREATIONDATE] = _rfc3339(item.mtime)
            if not node.is_folder:
                values[GETCONTENTLENGTH] = str(item.size)
                values[GETCONTENTTYPE] = escape(content_type_of(item.name))
                values[GETETAG] = escape(etag_of(item))
        if with_quota and node.is_folder:
            quota = self._quota(node)
            if quota is not None:
                values[QUOTA_USED], values[QUOTA_AVAILABLE] = str(quota[0]), str(quota[1])
        return values

    def _owner_id(self, node: Node) -> int | None:
        if node.share is not None:
            return None  # the owner's quota is the owner's business, not the recipient's
        if node.cloud_folder is not None:
            return node.cloud_folder.owner_id
        if node.owner is not None:
            return node.owner.id
        if node.scope == ROOT and not self._namespace.is_admin_view:
            return self._namespace.user.id
        return None

    def _quota(self, node: Node) -> tuple[int, int] | None:
        """(used, available) bytes for the node's owner, or None for ownerless folders."""
        owner = self._owner_id(node)
        if owner is None:
            return None
        if owner not in self._usage:
            self._usage[owner] = (self._store.usage(owner), self._store.user_by_id(owner).quota_bytes)
        used, quota = self._usage[owner]
        if self._free is None:
            self._free = shutil.disk_usage(self._store.data_dir).free
        # What an upload can really use: the quota's rest, but never more than the disk holds.
        available = self._free if quota is None else max(0, min(self._free, quota - used))
        return used, available


# ----------------------------------------------------------------- output


def _element(name: PropName, content: str) -> str:
    namespace, local = name
    if namespace == DAV:
        tag, declaration = f"D:{local}", ""
    elif namespace == "":
        tag, declaration = local, ' xmlns=""'
    else:  # a client's own namespace: declared on the element itself
        tag, declaration = f"P:{local}", f" xmlns:P={quoteattr(namespace)}"
    return f"<{tag}{declaration}>{content}</{tag}>" if content else f"<{tag}{declaration}/>"


def propstat(status: int, props: Iterable[str], *, condition: str | None = None, description: str | None = None) -> str:
    """One ``propstat`` of already rendered property elements."""
    extra = f"<D:error><D:{condition}/></D:error>" if condition else ""
    if description:
        extra += f"<D:responsedescription>{escape(description)}</D:responsedescription>"
    return (
        f"<D:propstat><D:prop>{''.join(props)}</D:prop>"
        f"<D:status>HTTP/1.1 {status} {STATUS_TEXT[status]}</D:status>{extra}</D:propstat>"
    )


def response(href: str, request: PropRequest, values: dict[PropName, str]) -> str:
    """The ``response`` element answering ``request`` for one resource."""
    if request.kind == "propname":
        found, missing = [_element(name, "") for name in values], []
    elif request.kind == "allprop":
        shown = [name for name in values if name not in QUOTA_PROPS or name in request.names]
        shown += [name for name in request.names if name in values and name not in shown]
        found = [_element(name, values[name]) for name in shown]
        missing = [_element(name, "") for name in request.names if name not in values]
    else:
        found = [_element(name, values[name]) for name in request.names if name in values]
        missing = [_element(name, "") for name in request.names if name not in values]
    parts = [f"<D:response><D:href>{escape(href)}</D:href>"]
    if found or not missing:
        parts.append(propstat(200, found))
    if missing:
        parts.append(propstat(404, missing))
    parts.append("</D:response>")
    return "".join(parts)


def proppatch_response(href: str, names: Iterable[PropName]) -> str:
    """Every property refused: live ones are protected and there is no dead-property storage."""
    live = [_element(name, "") for name in names if name in LIVE_PROPS]
    dead = [_element(name, "") for name in names if name not in LIVE_PROPS]
    parts = [f"<D:response><D:href>{escape(href)}</D:href>"]
    if live:
        parts.append(propstat(403, live, condition="cannot-modify-protected-property", description="a live property"))
    if dead:
        parts.append(propstat(403, dead, description="this server does not store dead properties"))
    parts.append("</D:response>")
    return "".join(parts)


def multistatus(responses: Iterable[str]) -> bytes:
    body = "".join(responses)
    return f'<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">{body}</D:multistatus>\n'.encode()


def error_body(condition: str, message: str) -> bytes:
    """An RFC 4918 ``DAV:error`` naming the failed pre/postcondition, with a readable reason."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:{condition}/>'
        f"<D:responsedescription>{escape(message)}</D:responsedescription></D:error>\n"
    ).encode()
