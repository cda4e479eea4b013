"""The portal's rules for item names.

A CTERA portal serves Windows (SMB) clients, so it most plausibly applies the
Windows rules; we adopt them (see docs/PROTOCOL-CHOICES.md):

* ``InvalidName``: empty, ``.`` or ``..``, longer than 255 UTF-8 bytes, any of
  ``\\ / : * ? " < > |``, a control character (including NUL), or a trailing
  dot or space; also a lone surrogate or U+FFFE/U+FFFF, which are not text a
  file system or the portal's XML can carry.
* ``ReservedName``: the DOS device names (``CON``, ``NUL``, ``COM1`` …, with or
  without an extension) and ``.snapshots`` at the top of a cloud folder, where
  the portal publishes its snapshots.

Names compare case-insensitively (case-preserving) unless the store is
created case-sensitive: :func:`name_key` is the form uniqueness is checked on.
"""

from __future__ import annotations

import re
import unicodedata

from portal.store.errors import InvalidName, ReservedName

MAX_NAME_BYTES = 255
SNAPSHOTS_DIR = ".snapshots"

#: Windows' forbidden characters and controls, plus what is not a character at
#: all (lone surrogates) or cannot be written in the XML the portal speaks.
_FORBIDDEN = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]')
_DEVICE = re.compile(r"(?i)^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$")


def check_name(name: str, *, at_cloud_folder_top: bool = False) -> str:
    """Return ``name`` if the portal accepts it, else raise InvalidName/ReservedName."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        raise InvalidName(f"invalid name {name!r}")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidName(f"name longer than {MAX_NAME_BYTES} bytes")
    if _FORBIDDEN.search(name):
        raise InvalidName(f"name {name!r} contains a forbidden character")
    if name[-1] in ". ":
        raise InvalidName(f"name {name!r} ends with a dot or a space")
    if _DEVICE.match(name):
        raise ReservedName(f"{name!r} is a reserved device name")
    if at_cloud_folder_top and name_key(name, case_sensitive=False) == SNAPSHOTS_DIR:
        raise ReservedName(f"{name!r} is reserved for snapshots")
    return name


def name_key(name: str, *, case_sensitive: bool) -> str:
    """The form two names are compared in: NFC, and case-folded unless case-sensitive."""
    normal = unicodedata.normalize("NFC", name)
    return normal if case_sensitive else normal.casefold()
