"""What this machine knows that the portal does not yet: staged files, by path.

A file being written, or written and not yet uploaded, lives in the staging
store (``cache.staging``).  Until its upload is confirmed the portal shows
its old content (or nothing, for a new file), so every answer about it —
lookup, listing, attributes, reads — must come from here instead.  The
overlay is that index: remote path → staged record, consulted by the
filesystem wherever it would otherwise believe the portal.

A staged file is presented as a ``RemoteEntry`` whose ``version`` is
``staged:<record id>``: the kernel's page cache for it stays valid across
opens (every change went through the kernel), and a new remote version after
the upload is a different version, as it must be.  Its ``object_id`` is the
remote identity it will become a new version of, or ``local:<record id>``
for a file the portal has never seen — so a new file keeps one inode from
create to upload and beyond (``InodeTable.rekey``).

Single-threaded (trio); the index changes only in synchronous stretches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cache import StagedFile
from vfs.backends.base import Path, RemoteEntry

LOCAL_PREFIX = "local:"
STAGED_PREFIX = "staged:"


def local_identity(record_id: int) -> str:
    return f"{LOCAL_PREFIX}{record_id}"


def identity_of(record: StagedFile) -> str:
    """The object id a staged file is known by: its remote identity, or a local one."""
    return record.object_id or local_identity(record.id)


def entry_of(record: StagedFile) -> RemoteEntry:
    return RemoteEntry(path=record.path, is_dir=False, size=record.size, mtime=record.mtime,
                       object_id=identity_of(record), version=f"{STAGED_PREFIX}{record.id}")


class Overlay:
    """Staged records by path (one per path) and by id."""

    def __init__(self, records: Iterable[StagedFile] = ()) -> None:
        self._by_path: dict[Path, StagedFile] = {}
        self._by_id: dict[int, StagedFile] = {}
        for record in records:
            self.put(record)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[StagedFile]:
        return iter(list(self._by_id.values()))

    def at(self, path: Path) -> StagedFile | None:
        return self._by_path.get(path)

    def get(self, record_id: int) -> StagedFile | None:
        return self._by_id.get(record_id)

    def entry(self, path: Path) -> RemoteEntry | None:
        record = self._by_path.get(path)
        return entry_of(record) if record is not None else None

    def put(self, record: StagedFile) -> None:
        """Add or refresh a record (its path may have changed)."""
        old = self._by_id.get(record.id)
        if old is not None and self._by_path.get(old.path) is old:
            del self._by_path[old.path]
        self._by_id[record.id] = record
        self._by_path[record.path] = record

    def remove(self, record_id: int) -> StagedFile | None:
        record = self._by_id.pop(record_id, None)
        if record is not None and self._by_path.get(record.path) is record:
            del self._by_path[record.path]
        return record

    def children(self, folder: Path) -> dict[str, RemoteEntry]:
        """Staged files directly in ``folder``, by name."""
        depth = len(folder)
        return {path[-1]: entry_of(record) for path, record in self._by_path.items()
                if len(path) == depth + 1 and path[:depth] == folder}

    def below(self, folder: Path) -> list[StagedFile]:
        """Staged files anywhere under ``folder``."""
        depth = len(folder)
        return [record for path, record in self._by_path.items() if len(path) > depth and path[:depth] == folder]

    def at_or_below(self, path: Path) -> list[StagedFile]:
        """Every staged record at ``path`` or under it (a file, or a folder and its contents)."""
        depth = len(path)
        return [record for record in self._by_id.values() if record.path[:depth] == path]

    def merge(self, folder: Path, entries: Iterable[RemoteEntry]) -> list[RemoteEntry]:
        """A folder's remote listing with staged files laid over it (replacing same names)."""
        staged = self.children(folder)
        if not staged:
            return list(entries)
        merged = [staged.pop(entry.name, entry) for entry in entries]
        merged.extend(sorted(staged.values(), key=lambda entry: entry.name))
        return merged
