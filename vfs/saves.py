"""Keeping a file's identity through the ways applications save it.

Few applications overwrite a document in place.  Most write a new file and
then shuffle names, and on a plain disk the result is a new inode under the
old name.  On the portal a new file would mean a new ``fileId``: the
document's version history, its shares and public links would all stay with
the old one, in the recycle bin.  So the shuffles are recognised:

* **temp + rename over** (gedit, LibreOffice, ``sed -i``, vim without a
  backup): the rename itself makes the staged temp file a new version of the
  file it replaces (handled where renames are, in the filesystem).
* **delete, then rename/create** (Excel), and **rename aside, rename in,
  delete the backup** (Word; vim with ``writebackup``): the original leaves
  the name first.  :class:`Vacancies` remembers for a short while which
  portal file left which name and where it went; a staged file that takes
  the name within that window becomes its *heir* and carries the departed
  file as its **donor** in the staging record (durable, so it survives a
  crash between the shuffle and the upload).  Before the heir's first upload
  the donor is brought back to the name (:func:`bring_back`: ``undelete``
  and/or ``move``), and the upload becomes a new version of it.

A donor that was renamed aside is brought back only if it went to a name on
the exclude list (a backup such as ``NAME~`` or ``~WRL0001.tmp``) or was
deleted since; a file deliberately renamed to an ordinary name keeps it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import trio

from cache import StagedFile
from vfs.backends.base import Path, ProtocolError, RemoteEntry, WritableBackend

#: How long a name remembers the file that left it.
WINDOW = 120.0

_KEYS = ("donor", "donor_path", "donor_deleted")


@dataclass(frozen=True)
class Donor:
    object_id: str
    path: Path
    """Where the donor is on the portal now (in the recycle bin at that path if ``deleted``)."""
    deleted: bool


def donor_of(record: StagedFile) -> Donor | None:
    meta = record.meta
    if "donor" not in meta:
        return None
    try:
        path = tuple(json.loads(meta["donor_path"]))
    except (KeyError, ValueError, TypeError):
        return None
    return Donor(meta["donor"], path, meta.get("donor_deleted") == "1")


def with_donor(meta: dict[str, str], donor: Donor) -> dict[str, str]:
    return {**meta, "donor": donor.object_id, "donor_path": json.dumps(list(donor.path)),
            "donor_deleted": "1" if donor.deleted else "0"}


def without_donor(meta: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in meta.items() if key not in _KEYS}


async def bring_back(backend: WritableBackend, donor: Donor, path: Path) -> RemoteEntry:
    """Put the donor at ``path`` (undeleting and/or moving it) and describe it there."""
    if donor.deleted:
        await backend.undelete(donor.path)
    if donor.path != path:
        await backend.move(donor.path, path, replace=False)
    entry = await backend.stat(path)
    if entry.object_id != donor.object_id:
        raise ProtocolError(f"/{'/'.join(path)} is not the file brought back")
    return entry


@dataclass
class _Departure:
    donor: Donor
    at: float


class Vacancies:
    """Names recently left by portal files: (former path) → where the file went."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._left: dict[Path, _Departure] = {}

    def left(self, path: Path, object_id: str, now_at: Path, *, deleted: bool) -> None:
        """The portal file ``object_id`` left ``path`` for ``now_at`` (or the recycle bin)."""
        self._expire()
        self._left[path] = _Departure(Donor(object_id, now_at, deleted), trio.current_time())
        self._follow(object_id, now_at, deleted)

    def _follow(self, object_id: str, now_at: Path, deleted: bool) -> None:
        """Keep earlier departures of the same file pointing at where it is now."""
        for departure in self._left.values():
            if departure.donor.object_id == object_id:
                departure.donor = Donor(object_id, now_at, deleted)

    def moved(self, object_id: str, now_at: Path) -> None:
        self._follow(object_id, now_at, False)

    def claim(self, path: Path) -> Donor | None:
        """The donor for a staged file that takes ``path`` now (and forget the vacancy)."""
        self._expire()
        departure = self._left.pop(path, None)
        return departure.donor if departure is not None else None

    def _expire(self) -> None:
        horizon = trio.current_time() - self.window
        for path in [path for path, departure in self._left.items() if departure.at < horizon]:
            del self._left[path]
