"""``fetchResources`` replies and their ``ResourceInfo`` objects → :class:`RemoteEntry`.

Decoding follows the schema of spec §4.2.1 field by field with the typed
helpers of :mod:`wire.ctera_xml`; nothing is guessed from how a value looks
(a file named ``123`` stays a string, a ``size`` of ``abc`` is an error).

Identity and validators:

* ``object_id`` is ``ctera:<fileId>``: the reference portal keeps ``fileId``
  across renames, moves and new versions (docs/PROTOCOL-CHOICES.md #14), so
  cached blocks survive a rename.  An item without ``fileId`` (the root, the
  containers, a ``.snapshots`` folder) falls back to ``ctera-path:<href>``.
* ``version`` is ``<fileId>:<size>:<lastmodified>`` with ``lastmodified``
  verbatim.  It changes whenever the content does, as far as the listing can
  tell; the download path adds the server's ETag on top (see
  :mod:`vfs.backends.ctera.downloads`).

Permissions (spec §4.2.1 [A]): ``ReadWrite`` is writable; ``ReadOnly`` and
``PreviewOnly`` are read-only; ``UploadOnly`` is writable but not readable;
``None`` is neither.  The root and the container levels above cloud folders
are read-only whatever ``permission`` says.

Hostile listings: the portal's answer is untrusted input that becomes local
file names.  A child whose name is empty, ``.``/``..``, holds ``/`` or NUL,
is longer than 255 UTF-8 bytes, whose href does not lie directly inside the
listed folder, whose href and ``name`` disagree, that repeats a name already
on the page, or whose fields do not decode, is skipped with a warning; the
rest of the page is returned.  A reply whose *shape* is wrong (not a
``FetchResourcesResp``-like object) is a :class:`ProtocolError`.

Writing needs two facts a ``RemoteEntry`` does not carry: *where* a folder
sits (``scope``: the root and the containers above the cloud folders take no
children, spec §4.6) and the uid of its cloud folder (the upload URL names
it).  :func:`placement_of` reads them; :func:`write_refusal` turns them into
the error the portal would answer, so an upload into the root is refused
before its content is sent.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass

from vfs.backends.base import BackendError, NotADirectory, Path, PermissionDenied, ProtocolError, ReadOnly, RemoteEntry
from vfs.backends.ctera.paths import InvalidHref, name_problem, names_of_href
from wire import ctera_xml
from wire.ctera_xml import Obj, XmlDecodeError

__all__ = [
    "READ_ONLY_SCOPES",
    "FetchReply",
    "Placement",
    "child_entries",
    "decode_fetch_reply",
    "entry_of",
    "placement_of",
    "write_refusal",
]

log = logging.getLogger(__name__)

#: Scopes above the cloud folders (and device backups): nothing can be written there.
READ_ONLY_SCOPES = frozenset(
    {
        "Root",
        "ProjectsContainer",
        "SharedContainer",
        "SharedDomain",
        "BackupsContainer",
        "Backup",
        "UsersContainer",
        "UsersFoldersContainer",
        "CloudDrivesContainer",
    }
)
UNREADABLE_PERMISSIONS = frozenset({"UploadOnly", "None"})
WRITABLE_PERMISSIONS = frozenset({"ReadWrite", "UploadOnly"})


@dataclass(frozen=True)
class FetchReply:
    """The four fields of a ``fetchResources`` reply, shape-checked."""

    root: Obj | None
    items: list[Obj]
    has_more: bool
    error_type: str | None


def decode_fetch_reply(value: ctera_xml.Value, *, what: str) -> FetchReply:
    """Check the reply's shape; ProtocolError if it is not a fetchResources answer."""
    try:
        reply = ctera_xml.as_obj(value)
        if reply is None:
            raise XmlDecodeError("the reply is null")
        return FetchReply(
            root=ctera_xml.as_obj(reply.get("root")),
            items=list(ctera_xml.iter_objs(reply.get("items"))),
            has_more=bool(ctera_xml.as_bool(reply.get("hasMore"), default=False)),
            error_type=ctera_xml.as_str(reply.get("errorType")) or None,
        )
    except XmlDecodeError as exc:
        raise ProtocolError(f"{what}: unexpected reply ({exc})") from None


def entry_of(info: Obj, path: Path, *, href: str) -> RemoteEntry:
    """The entry for ``info`` found at ``path``; XmlDecodeError if a field has the wrong type."""
    is_dir = ctera_xml.as_bool(info.get("isFolder"))
    if is_dir is None:
        raise XmlDecodeError("isFolder is missing")
    size = ctera_xml.as_int(info.get("size"), default=0) or 0
    if size < 0:
        raise XmlDecodeError(f"negative size {size}")
    modified = ctera_xml.as_str(info.get("lastmodified"))
    mtime = ctera_xml.parse_timestamp(modified) if modified else 0.0
    file_id = ctera_xml.as_str(info.get("fileId"))
    file_id = file_id.strip() if file_id else None
    permission = ctera_xml.as_str(info.get("permission"))
    scope = ctera_xml.as_str(info.get("scope"))
    # An unknown permission value keeps the item readable (the portal listed it to
    # us, and a refused download is a clean EACCES) but never writable.
    readable = permission not in UNREADABLE_PERMISSIONS
    writable = permission in WRITABLE_PERMISSIONS and scope not in READ_ONLY_SCOPES
    return RemoteEntry(
        path=path,
        is_dir=is_dir,
        size=0 if is_dir else size,
        mtime=mtime,
        object_id=f"ctera:{file_id}" if file_id else f"ctera-path:{href}",
        version=f"{file_id or ''}:{size}:{modified or ''}",
        readable=readable,
        writable=writable,
        deleted=bool(ctera_xml.as_bool(info.get("isDeleted"), default=False)),
    )


def child_entries(reply: FetchReply, folder: Path, context: str, *, only_deleted: bool = False) -> list[RemoteEntry]:
    """The valid children of ``folder`` on this page; hostile ones are skipped and logged.

    With ``only_deleted`` just the deleted (``isDeleted``) ones are kept, and a
    name may legitimately repeat (deleted twice, or deleted and alive again):
    the one listed last is kept, quietly.
    """
    entries: dict[str, RemoteEntry] = {}
    for info in reply.items:
        try:
            entry = _child_entry(info, folder, context)
        except _Rejected as rejected:
            log.warning("ignoring an item the portal listed in /%s: %s", "/".join(folder), rejected)
            continue
        if only_deleted:
            if entry.deleted:
                entries.pop(entry.name, None)
                entries[entry.name] = entry
            continue
        if entry.name in entries:
            log.warning("ignoring a second item named %r in /%s", entry.name, "/".join(folder))
            continue
        entries[entry.name] = entry
    return list(entries.values())


@dataclass(frozen=True)
class Placement:
    """Where an item sits, as far as writing into it is concerned."""

    scope: str | None
    permission: str | None
    cloud_folder_uid: str | None


def placement_of(info: Obj) -> Placement:
    """The scope, permission and cloud folder uid of a ``ResourceInfo``; XmlDecodeError if malformed."""
    folder = ctera_xml.as_obj(info.get("cloudFolderInfo"))
    uid = ctera_xml.as_str(folder.get("uid")) if folder is not None else None
    uid = uid.strip() if uid else None
    return Placement(
        scope=ctera_xml.as_str(info.get("scope")),
        permission=ctera_xml.as_str(info.get("permission")),
        cloud_folder_uid=uid or None,
    )


def write_refusal(entry: RemoteEntry, placement: Placement, *, what: str) -> BackendError | None:
    """Why nothing can be created inside ``entry``, or None if the portal would allow it.

    The root and the containers (and anything outside a cloud folder) are
    read-only places (EROFS); a cloud folder location without write
    permission refuses this user (EACCES), as the vendor SDK decides (spec §4.6).
    """
    if not entry.is_dir:
        return NotADirectory(f"{what}: /{'/'.join(entry.path)} is not a folder")
    if placement.scope in READ_ONLY_SCOPES or placement.cloud_folder_uid is None:
        return ReadOnly(f"{what}: /{'/'.join(entry.path)} is a read-only location")
    if placement.permission not in WRITABLE_PERMISSIONS:
        return PermissionDenied(f"{what}: no write permission in /{'/'.join(entry.path)} ({placement.permission})")
    return None


class _Rejected(Exception):
    pass


def _child_entry(info: Obj, folder: Path, context: str) -> RemoteEntry:
    try:
        name = ctera_xml.as_str(info.get("name"))
        href = ctera_xml.as_str(info.get("href"))
    except XmlDecodeError as exc:
        raise _Rejected(f"undecodable name or href ({exc})") from None
    if name is None or href is None:
        raise _Rejected(f"an item without name or href (name={name!r:.80}, href={href!r:.120})")
    problem = name_problem(name)
    if problem is not None:
        raise _Rejected(f"{problem}: {name!r:.300}")
    try:
        names = names_of_href(href, context)
    except InvalidHref as exc:
        raise _Rejected(str(exc)) from None
    if len(names) != len(folder) + 1 or not _same_path(names[:-1], folder):
        raise _Rejected(f"href {href!r:.300} is not inside the listed folder")
    if names[-1] != name:
        raise _Rejected(f"href {href!r:.300} does not end with the item's name {name!r:.300}")
    try:
        return entry_of(info, (*folder, name), href=href)
    except XmlDecodeError as exc:
        raise _Rejected(f"{name!r}: {exc}") from None


def _same_path(found: Path, expected: Path) -> bool:
    """Equal, or equal ignoring case and normalisation form (the portal is case-insensitive)."""
    if found == expected:
        return True
    return len(found) == len(expected) and all(_fold(a) == _fold(b) for a, b in zip(found, expected, strict=True))


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()
