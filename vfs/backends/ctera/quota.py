"""Usage and quota for ``statfs``: RFC 4331 properties on a WebDAV ``PROPFIND``.

The CTERA file-browser API has no quota call (spec §11.1).  The reference
portal reports ``DAV:quota-used-bytes`` and ``DAV:quota-available-bytes`` on
the collections of a cloud folder (docs/PROTOCOL-CHOICES.md #15), so the
client asks for exactly those two on a cloud folder with ``Depth: 0``.

Everything about this is optional: a portal that refuses ``PROPFIND``, omits
the properties, answers them with a 404 propstat or with text that is not a
number yields ``None`` ("the portal does not say"), and the filesystem shows
synthetic figures.  Only an expired session, a transient failure or an
unreachable portal are errors, as for any request.

The multistatus body is untrusted XML: it is parsed with ``defusedxml``
and capped in size.
"""

from __future__ import annotations

import logging
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from vfs.backends.base import AuthenticationFailed, BackendError, Quota, Transient
from vfs.backends.ctera.counters import RequestKind
from vfs.backends.ctera.session import Session

__all__ = ["PROPFIND_BODY", "parse_quota", "propfind_quota"]

log = logging.getLogger(__name__)

DAV = "{DAV:}"
MAX_MULTISTATUS = 1 << 20

PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/><D:quota-available-bytes/></D:prop></D:propfind>'
)


async def propfind_quota(session: Session, href: str) -> Quota | None:
    """One attempt: the quota the portal reports on the collection at ``href``."""
    what = f"quota of {href}"
    try:
        reply = await session.request(
            "PROPFIND",
            href.rstrip("/") + "/",
            kind=RequestKind.QUOTA,
            what=what,
            limit=MAX_MULTISTATUS,
            headers={"depth": "0", "content-type": 'application/xml; charset="utf-8"'},
            content=PROPFIND_BODY,
        )
    except (Transient, AuthenticationFailed):
        raise
    except BackendError as exc:
        log.info("%s: the portal does not report a quota (%s)", what, exc)
        return None
    if reply.status != 207:
        log.info("%s: PROPFIND answered %d, not a multistatus", what, reply.status)
        return None
    return parse_quota(reply.body)


def parse_quota(body: bytes) -> Quota | None:
    """The two RFC 4331 properties of the first response in a multistatus, if present."""
    try:
        root = safe_et.fromstring(body)
    except (DefusedXmlException, safe_et.ParseError, ValueError) as exc:
        log.info("the quota reply is not XML: %s", exc)
        return None
    if root.tag != f"{DAV}multistatus":
        return None
    response = root.find(f"{DAV}response")
    if response is None:
        return None
    used = _property(response, "quota-used-bytes")
    available = _property(response, "quota-available-bytes")
    if used is None:
        return None
    return Quota(used=used, available=available)


def _property(response: Element, name: str) -> int | None:
    """A non-negative integer property from a propstat whose status is 200."""
    for propstat in response.findall(f"{DAV}propstat"):
        status = (propstat.findtext(f"{DAV}status") or "").split()
        if len(status) < 2 or status[1] != "200":
            continue
        element = propstat.find(f"{DAV}prop/{DAV}{name}")
        if element is None:
            continue
        text = (element.text or "").strip()
        if text.isdigit():
            return int(text)
    return None
