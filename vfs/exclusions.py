"""Names that stay on this machine: lock, swap and temporary files of applications.

Office suites and editors surround every save with files nobody wants in the
cloud: LibreOffice's ``.~lock.NAME#``, Word's ``~$NAME``, vim's ``.NAME.swp``
and ``NAME~``, GNOME's ``.goutputstream-XXXXXX``, and assorted ``*.tmp``.
Uploading them costs a request each, litters other devices with files that
vanish a second later, and leaves them in the portal's recycle bin.

A file whose *current* name matches the exclude list is kept durably in the
local staging area (it survives ``kill -9`` and remounts like any written
file) but is never uploaded while it has that name.  Renaming it to an
ordinary name — LibreOffice writes ``lu123.tmp`` and renames it over the
document — makes it an ordinary pending upload.  ``fsync`` of an excluded
file makes it durable locally and returns without waiting for the portal.

SQLite's side files are local-only too: the database file itself is
uploaded whenever it is fsynced, i.e. at the end of each transaction (rollback
mode) or checkpoint (WAL mode), and such a snapshot is consistent on its own;
the journal or log only matters to processes on this machine, where it stays
durable.  Uploading them would send every transaction twice and fill the
portal's recycle bin with deleted journals.

Patterns are shell globs (``fnmatch``, case-sensitive) matched against the
name only, not the path.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".~lock.*#",  # LibreOffice lock files
    "~$*",  # Microsoft Office owner files
    ".*.swp", ".*.swo", ".*.swx", ".*.swpx",  # vim swap files
    "*~",  # editor backup files (vim, emacs, gedit)
    ".#*",  # emacs lock links
    ".goutputstream-*",  # GLib's atomic-replace temporaries
    "*.tmp",  # temporary files of many applications
    "*-journal", "*-wal", "*-shm",  # sqlite's rollback journal, write-ahead log, shared-memory index
)


class Exclusions:
    """A compiled exclude list; ``matches(name)`` is one regular-expression test."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_EXCLUDES) -> None:
        self.patterns = tuple(patterns)
        joined = "|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in self.patterns)
        self._regex = re.compile(joined) if joined else None

    def matches(self, name: str) -> bool:
        return self._regex is not None and self._regex.match(name) is not None

    def __repr__(self) -> str:
        return f"Exclusions({list(self.patterns)!r})"
