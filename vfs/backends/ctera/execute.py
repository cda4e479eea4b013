"""One ``execute`` call: the envelope every file-browser method travels in (spec §3.1).

``POST {ctx}/api`` with ``<obj><att id="type"><val>user-defined</val></att>
<att id="name">…</att><att id="param">…</att></obj>``; the reply is one XML
value.  Reads, writes and task polls all use it, so it lives apart from the
modules that call it.
"""

from __future__ import annotations

from vfs.backends.base import ProtocolError
from vfs.backends.ctera.session import Session
from wire import ctera_xml
from wire.ctera_xml import Obj, XmlDecodeError

__all__ = ["MAX_XML_REPLY", "execute"]

#: The largest execute reply accepted (a page of 1000 entries is about 1 MiB).
MAX_XML_REPLY = 32 << 20


async def execute(session: Session, name: str, param: ctera_xml.Value, *, kind: str, what: str) -> ctera_xml.Value:
    """One attempt at calling method ``name``; the decoded reply (None for an empty body)."""
    envelope = Obj(None, {"type": "user-defined", "name": name, "param": param})
    reply = await session.request(
        "POST",
        f"{session.context}/api",
        kind=kind,
        what=what,
        limit=MAX_XML_REPLY,
        headers={"content-type": "text/plain; charset=utf-8"},
        content=ctera_xml.encode(envelope),
    )
    try:
        return ctera_xml.decode(reply.body)
    except XmlDecodeError as exc:
        raise ProtocolError(f"{what}: the portal's reply is not valid XML ({exc})") from None
