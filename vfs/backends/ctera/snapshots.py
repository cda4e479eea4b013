"""``listSnapshots`` replies → :class:`SnapshotRef` (spec §4.3).

Each ``SnapshotResp`` names where the object lived at one point in time as
``url`` + ``path``, two strings the vendor SDK concatenates and
percent-decodes; the result must lie in the context's WebDAV namespace.  The
reference portal answers ``url = {ctx}/webdav/<cloud folder>/.snapshots/<time>``
and ``path = /<path inside>`` (docs/PROTOCOL-CHOICES.md #1), and the live
version with ``url`` = the cloud folder and ``current = true``.

Subtleties:

* The concatenation is split into names *before* decoding (see
  :mod:`vfs.backends.ctera.paths`), and each name is checked like a listed
  one: a snapshot reference is a path we will list and read, so a hostile
  one (``..``, a NUL, a path outside the namespace) is skipped and logged.
* ``url`` may or may not be encoded (the SDK decodes either; the spec's
  example is raw), which splitting first handles as long as no name holds a
  literal ``%``.  If both halves supply the joining ``/`` one is dropped.
* The time is ``calculatedTimestamp`` (``startTimestamp`` if absent); naive
  times are UTC; fractions and offsets are accepted.
* The result is sorted oldest first, the live version (if listed) last among
  equal times.
"""

from __future__ import annotations

import logging
import urllib.parse

from vfs.backends.base import Path, ProtocolError, SnapshotRef
from vfs.backends.ctera.paths import InvalidHref, name_problem, names_of_href
from wire import ctera_xml
from wire.ctera_xml import Obj, XmlDecodeError

__all__ = ["snapshot_refs"]

log = logging.getLogger(__name__)


def snapshot_refs(value: ctera_xml.Value, context: str, *, what: str) -> list[SnapshotRef]:
    """The valid snapshot references of a ``listSnapshots`` reply, oldest first."""
    try:
        records = list(ctera_xml.iter_objs(value))
    except XmlDecodeError as exc:
        raise ProtocolError(f"{what}: unexpected reply ({exc})") from None
    refs: list[SnapshotRef] = []
    for record in records:
        try:
            refs.append(_snapshot_ref(record, context))
        except (XmlDecodeError, InvalidHref) as exc:
            log.warning("%s: ignoring a snapshot the portal listed: %s", what, exc)
    refs.sort(key=lambda ref: (ref.taken_at, ref.current))
    return refs


def _snapshot_ref(record: Obj, context: str) -> SnapshotRef:
    url = ctera_xml.as_str(record.get("url")) or ""
    inner = ctera_xml.as_str(record.get("path")) or ""
    if "://" in url:
        url = urllib.parse.urlsplit(url).path
    if url.endswith("/") and inner.startswith("/"):
        inner = inner[1:]
    path = names_of_href(url + inner, context)
    _check_names(path)
    stamp = ctera_xml.as_str(record.get("calculatedTimestamp")) or ctera_xml.as_str(record.get("startTimestamp"))
    if not stamp:
        raise XmlDecodeError("a snapshot without a timestamp")
    current = bool(ctera_xml.as_bool(record.get("current"), default=False))
    return SnapshotRef(taken_at=ctera_xml.parse_timestamp(stamp), path=path, current=current)


def _check_names(path: Path) -> None:
    for name in path:
        problem = name_problem(name)
        if problem is not None:
            raise InvalidHref(f"snapshot path /{'/'.join(path)!r:.300}: {problem}")
