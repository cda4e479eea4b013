"""Names of conflict copies: where local content goes when the portal's copy changed meanwhile.

If the file on the portal is no longer the version a local edit started
from, uploading the edit would silently overwrite someone else's work.  The
edit is uploaded next to it instead, as ``NAME (conflict YYYY-MM-DD
HHMMSS).EXT`` (local time, so a person reading the folder recognises it),
and the remote file is left untouched.  The extension stays last so the copy
still opens in the right application; a name that is taken already gets a
counter, ``… HHMMSS 2).EXT``.
"""

from __future__ import annotations

import time
from collections.abc import Container


def split_extension(name: str) -> tuple[str, str]:
    """``report.final.docx`` → (``report.final``, ``.docx``); dot-files have no extension."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or not extension or " " in extension or len(extension) > 16:
        return name, ""
    return stem, "." + extension


def conflict_name(name: str, when: float, taken: Container[str] = ()) -> str:
    """The conflict copy's name for ``name`` at POSIX time ``when``, avoiding ``taken``."""
    stem, extension = split_extension(name)
    stamp = time.strftime("%Y-%m-%d %H%M%S", time.localtime(when))
    candidate = f"{stem} (conflict {stamp}){extension}"
    counter = 2
    while candidate in taken:
        candidate = f"{stem} (conflict {stamp} {counter}){extension}"
        counter += 1
    return candidate
