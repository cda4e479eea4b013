"""Several small files of one folder in one request: the portal's ZIP download (spec §4.5).

Reading a folder of many small files costs one ``GET`` per file, and the
portal spends milliseconds of CPU on each whatever its size.  ``POST
{ctx}/folders/folders/<cloudFolderUid>`` with a selection of paths answers
with one ZIP holding them all, so the filesystem can ask for a folder's
small files together (:meth:`Archives.read_together`) and read one by one
only what this did not deliver.

Subtleties:

* **Best effort, file by file.**  A file is in the answer only if exactly
  one member of the ZIP matches it and that member is intact: its
  uncompressed content has exactly the entry's size, its CRC is right, its
  compression is one zipfile knows.  Anything else (missing, ambiguous,
  another size, corrupt, encrypted) is left out and logged; the caller reads
  those files one by one, where every check of :mod:`.downloads` applies.
* **Matched by the last name.**  Whether a real portal puts the folder's
  name in front of a selected member's is [U]: a member matches the entry
  whose name equals the last component of the member's name, both in NFC.
  A member matching two entries, or two members matching one, leave those
  entries out.  A member name without ZIP's UTF-8 flag is also tried as
  UTF-8 (zipfile reads it as code page 437, which Java writers never meant).
* **Size is the only version check.**  A ZIP carries no ETag, and its member
  times are local times of unknown zone in two-second steps, so content of
  another version with the same size is not told apart
  (docs/PROTOCOL-CHOICES.md #34).  That is the listing's own resolution
  (``version`` is ``fileId``, size and a one-second time), so the caller
  should only ask for files it has just listed.
* **The request fails as a whole.**  A selected file deleted meanwhile makes
  the reference portal answer 404 for all of them: NotFound, and the caller
  falls back to reading one by one rather than this guessing which file it
  was.  Statuses are translated like any request's (:mod:`.errors`),
  transient failures are retried under the one retry policy, an expired
  session is renewed by the session; the cloud folder uid comes from
  :mod:`.cloud_folders` (remembered from listings, looked up otherwise).
* **Bounded memory.**  zipfile needs the central directory at the end, so
  the reply is held in memory, but never more than the selected files' sizes
  plus a generous allowance for ZIP's headers (:func:`reply_limit`); a
  longer reply is a ProtocolError.  A member is inflated to at most its
  entry's size, so a small hostile member cannot grow.  A large reply is
  unpacked (CRCs, inflating) on a worker thread.
* **Not asked for:** empty files (the content of a version of size 0 is
  known, as :meth:`~.downloads.RangeReader.read` knows it), entries the
  listing says are unreadable (their refusal would fail the whole request),
  and entries that share a name or an id with another (they could not be
  told apart in the reply).  A folder outside every cloud folder (a file
  shared directly sits in ``Shared With Me``) has no uid to ask: nothing but
  the empty files is answered.
"""

from __future__ import annotations

import functools
import io
import logging
import lzma
import struct
import unicodedata
import urllib.parse
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import trio

from vfs.backends.base import BackendError, NotFound, Path, ProtocolError, RemoteEntry
from vfs.backends.ctera.cloud_folders import CloudFolders, Refusal
from vfs.backends.ctera.counters import RequestKind
from vfs.backends.ctera.paths import href_of
from vfs.backends.ctera.resources import Placement
from vfs.backends.ctera.session import Session
from vfs.backends.retry import RetryHook, RetryPolicy
from wire import ctera_xml
from wire.ctera_xml import obj

__all__ = ["ARCHIVE_OVERHEAD", "MEMBER_OVERHEAD", "UNPACK_INLINE", "Archives", "member_names", "reply_limit", "unpack"]

log = logging.getLogger(__name__)

#: Room per member for ZIP's headers besides its name (local header, data
#: descriptor, central directory entry, ZIP64 extras: about 150 bytes).
MEMBER_OVERHEAD = 512
#: Room per reply for the end records of the archive, and slack.
ARCHIVE_OVERHEAD = 64 << 10
#: Replies longer than this are unpacked on a worker thread.
UNPACK_INLINE = 1 << 20

#: Bit 11 of a ZIP member's flags: its name is UTF-8.
_UTF8_NAME = 0x800

#: What zipfile raises for damaged or unsupported input: its own error, the
#: codecs' (zlib, lzma; bz2 raises OSError), a truncated stream (EOFError), an
#: encrypted member (RuntimeError), an unknown method (NotImplementedError), a
#: name flagged UTF-8 that is not (ValueError), a record cut short (struct.error).
_ZIP_FAILURES = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    RuntimeError,
    EOFError,
    ValueError,
    OSError,
    struct.error,
)


class _NoCloudFolder(BackendError):
    """The folder belongs to no cloud folder, so there is no uid to address a ZIP to."""


class Archives:
    """Reads several files of one folder through one session as one ZIP (see the module docstring)."""

    def __init__(
        self, session: Session, retry: RetryPolicy, folders: CloudFolders, *, on_retry: RetryHook | None = None
    ) -> None:
        self._session = session
        self._retry = retry
        self._folders = folders
        self._on_retry = on_retry

    async def read_together(self, entries: Sequence[RemoteEntry]) -> dict[str, bytes]:
        """The whole content of as many of ``entries`` as one ZIP delivers intact, by ``object_id``.

        ValueError unless ``entries`` are files of one folder.  Errors of the
        request as a whole are raised (NotFound, PermissionDenied, Transient…).
        """
        if not entries:
            return {}
        folder = _common_folder(entries)
        answer = {entry.object_id: b"" for entry in entries if entry.size == 0}
        wanted = _selection(entries)
        if not wanted:
            return answer
        what = f"ZIP of {len(wanted)} file(s) in /{'/'.join(folder)}"
        limit = reply_limit(folder, wanted.values())

        async def fetch(uid: str) -> bytes:
            return await self._fetch(uid, list(wanted.values()), limit, what)

        async def attempt() -> bytes:
            return await self._folders.send(folder, fetch, refusal=_refusal(what), what=what)

        try:
            body = await self._retry.run(attempt, on_retry=self._on_retry)
        except _NoCloudFolder as exc:
            log.debug("%s: %s; the files are to be read one by one", what, exc)
            return answer
        if len(body) > UNPACK_INLINE:
            answer.update(await trio.to_thread.run_sync(functools.partial(unpack, body, wanted, what=what)))
        else:
            answer.update(unpack(body, wanted, what=what))
        return answer

    async def _fetch(self, uid: str, entries: list[RemoteEntry], limit: int, what: str) -> bytes:
        """One POST of the selection; the ZIP (at most ``limit`` bytes, else ProtocolError)."""
        session = self._session
        selection = obj(
            None,
            paths=[href_of(session.context, entry.path) for entry in entries],
            snapshot=None,
            password=None,
            portalName=None,
            showDeleted=False,
        )
        form = urllib.parse.urlencode({"inputXML": ctera_xml.encode_text(selection)})
        reply = await session.request(
            "POST",
            f"{session.context}/folders/folders/{urllib.parse.quote(uid, safe='')}",
            kind=RequestKind.ARCHIVE,
            what=what,
            limit=limit,
            # A ZIP gains nothing from a second compression.
            headers={"content-type": "application/x-www-form-urlencoded", "accept-encoding": "identity"},
            content=form.encode("ascii"),
            # Off the trio thread, like other content; the POST only reads, so it may be sent again.
            bulk=True,
            reads_only=True,
        )
        session.counters.content_bytes += len(reply.body)
        return reply.body


def reply_limit(folder: Path, entries: Iterable[RemoteEntry]) -> int:
    """The longest ZIP reply accepted for ``entries`` of ``folder``.

    Their sizes, plus per member :data:`MEMBER_OVERHEAD` and its name twice
    (local header and central directory) with the folder's name in front in
    case the portal puts it there, plus :data:`ARCHIVE_OVERHEAD`.
    """
    prefix = len(folder[-1].encode("utf-8")) + 1 if folder else 0
    return ARCHIVE_OVERHEAD + sum(
        entry.size + MEMBER_OVERHEAD + 2 * (prefix + len(entry.name.encode("utf-8"))) for entry in entries
    )


def unpack(body: bytes, wanted: Mapping[str, RemoteEntry], *, what: str) -> dict[str, bytes]:
    """The content of each entry of ``wanted`` (keyed by its NFC name) that the ZIP
    ``body`` holds intact, by ``object_id``.  ProtocolError if ``body`` is no ZIP."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except _ZIP_FAILURES as exc:
        raise ProtocolError(f"{what}: the reply is not a ZIP archive ({exc})") from None
    found: dict[str, bytes] = {}
    with archive:
        members, ambiguous = _members_by_name(archive, wanted)
        for name, entry in wanted.items():
            matching = members.get(name, [])
            if name in ambiguous or len(matching) > 1:
                log.info("%s: %r matches more than one member, or a member matches more than one file: "
                         "left out", what, entry.name)
            elif not matching:
                log.debug("%s: %r is not in the archive: left out", what, entry.name)
            else:
                data = _content(archive, matching[0], entry, what)
                if data is not None:
                    found[entry.object_id] = data
    return found


def _members_by_name(
    archive: zipfile.ZipFile, wanted: Mapping[str, RemoteEntry]
) -> tuple[dict[str, list[zipfile.ZipInfo]], set[str]]:
    """The file members matching each wanted name, and the names a member shares with another."""
    members: dict[str, list[zipfile.ZipInfo]] = {}
    ambiguous: set[str] = set()
    for member in archive.infolist():
        if member.is_dir():
            continue
        names = member_names(member) & wanted.keys()
        if len(names) > 1:
            ambiguous |= names
        for name in names:
            members.setdefault(name, []).append(member)
    return members, ambiguous


def member_names(member: zipfile.ZipInfo) -> set[str]:
    """The last component of the member's name in NFC; without the UTF-8 flag, also
    that of the name's bytes read as UTF-8."""
    spellings = {member.filename}
    if not member.flag_bits & _UTF8_NAME:
        try:
            spellings.add(member.filename.encode("cp437").decode("utf-8"))
        except UnicodeError:
            pass
    return {unicodedata.normalize("NFC", spelling.rsplit("/", 1)[-1]) for spelling in spellings}


def _content(archive: zipfile.ZipFile, member: zipfile.ZipInfo, entry: RemoteEntry, what: str) -> bytes | None:
    """The member's content if it is intact and exactly ``entry.size`` bytes long, else None (logged)."""
    if member.file_size != entry.size:
        log.info("%s: %r holds %d bytes, not the %d listed (another version?): left out",
                 what, entry.name, member.file_size, entry.size)
        return None
    try:
        with archive.open(member) as stream:
            # Never inflates beyond the listed size; reading to the end checks the CRC.
            data = stream.read(entry.size)
    except _ZIP_FAILURES as exc:
        log.info("%s: %r cannot be unpacked (%s): left out", what, entry.name, exc)
        return None
    if len(data) != entry.size:
        log.info("%s: %r ended after %d of %d bytes: left out", what, entry.name, len(data), entry.size)
        return None
    return data


def _common_folder(entries: Sequence[RemoteEntry]) -> Path:
    """The one folder all ``entries`` are files of; ValueError otherwise."""
    folder = entries[0].path[:-1]
    for entry in entries:
        if entry.is_dir or not entry.path:
            raise ValueError(f"/{'/'.join(entry.path)} is a folder: only files can be read together")
        if entry.path[:-1] != folder:
            raise ValueError(
                f"/{'/'.join(entry.path)} is not in /{'/'.join(folder)}: only files of one folder can be read together"
            )
    return folder


def _selection(entries: Sequence[RemoteEntry]) -> dict[str, RemoteEntry]:
    """The entries worth asking for, by NFC name (see "Not asked for" in the module docstring)."""
    by_name: dict[str, list[RemoteEntry]] = {}
    for entry in entries:
        if entry.size == 0 or not entry.readable:
            continue
        same = by_name.setdefault(unicodedata.normalize("NFC", entry.name), [])
        if entry not in same:
            same.append(entry)
    ids = Counter(entry.object_id for same in by_name.values() for entry in same)
    selected = {}
    for name, same in by_name.items():
        if len(same) == 1 and ids[same[0].object_id] == 1:
            selected[name] = same[0]
        else:
            log.debug("not asking for %r in a ZIP: its name or id is shared with another entry", name)
    return selected


def _refusal(what: str) -> Refusal:
    """How a ZIP request refuses a folder: one that is no longer a folder has none of
    the files asked for; one outside every cloud folder has no uid to ask."""

    def refusal(folder: RemoteEntry, placement: Placement) -> BackendError | None:
        if not folder.is_dir:
            return NotFound(f"{what}: /{'/'.join(folder.path)} is no longer a folder")
        if placement.cloud_folder_uid is None:
            return _NoCloudFolder(f"/{'/'.join(folder.path)} belongs to no cloud folder")
        return None

    return refusal
