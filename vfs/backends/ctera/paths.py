"""Paths in a context's WebDAV namespace: tuples of names ⇄ hrefs.

The backend speaks in tuples of names (``("My Files", "a b.txt")``); the wire
speaks in *hrefs*, the percent-encoded absolute form
``/ServicesPortal/webdav/My%20Files/a%20b.txt`` (spec §9).  Hrefs go into
execute parameters and are the path of download URLs.

Subtleties:

* Encoding quotes every byte but unreserved ones *per name*, so a ``/``,
  ``%``, ``#`` or ``?`` inside a name can never change the path's shape.
* Decoding splits on ``/`` **before** percent-decoding, so ``a%2Fb`` is one
  name ``a/b`` (which :func:`name_problem` then refuses) rather than two.
  Decoding the whole string first, as the vendor SDK does, would let a
  hostile portal smuggle extra path levels (``..%2F..%2Fetc``) into a name.
* The portal is untrusted input: a name it sends may be ``..``, empty, hold
  NUL, or be longer than any local filesystem allows.  :func:`name_problem`
  says what is wrong with such a name; callers skip those entries and log it.
* ``+`` is a literal plus in paths (never a space), and invalid UTF-8 after
  decoding is refused rather than replaced.
"""

from __future__ import annotations

import re
import urllib.parse

from vfs.backends.base import InvalidName, NameTooLong, Path

__all__ = [
    "MAX_NAME_BYTES",
    "InvalidHref",
    "check_new_name",
    "href_of",
    "name_problem",
    "names_of_href",
    "storable_name_error",
    "webdav_root",
]

#: The longest name a Linux filesystem accepts (NAME_MAX), in UTF-8 bytes.
MAX_NAME_BYTES = 255


class InvalidHref(ValueError):
    """An href that does not name a path in the expected namespace."""


def webdav_root(context: str) -> str:
    """The href of a context's namespace root, e.g. ``/ServicesPortal/webdav``."""
    return f"{context}/webdav"


def href_of(context: str, path: Path) -> str:
    """The percent-encoded href of ``path`` (no trailing slash; the root is the bare prefix)."""
    encoded = "/".join(urllib.parse.quote(name, safe="") for name in path)
    root = webdav_root(context)
    return f"{root}/{encoded}" if encoded else root


def names_of_href(href: str, context: str) -> Path:
    """The names of ``href`` below the context's WebDAV root.

    Raises :class:`InvalidHref` for an href outside that root, one that does
    not decode to UTF-8, or one with an empty name in the middle (``a//b``).
    A single trailing ``/`` (folders) is allowed.  Names are *not* checked
    here; see :func:`name_problem`.
    """
    root = webdav_root(context)
    if href != root and not href.startswith(root + "/"):
        raise InvalidHref(f"href {href!r} is outside {root}")
    rest = href[len(root) + 1 :]
    rest = rest.removesuffix("/")
    if not rest:
        return ()
    names = []
    for part in rest.split("/"):
        if not part:
            raise InvalidHref(f"href {href!r} has an empty path segment")
        try:
            names.append(urllib.parse.unquote(part, errors="strict"))
        except UnicodeDecodeError:
            raise InvalidHref(f"href {href!r} does not decode to UTF-8") from None
    return tuple(names)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be one local file name, or None if it can."""
    error = _name_error(name)
    return None if error is None else str(error)


def check_new_name(name: str, what: str) -> None:
    """Raise :func:`name_problem`'s verdict on ``name`` as an error prefixed with
    ``what`` (the operation): InvalidName, NameTooLong for a name too long."""
    error = _name_error(name)
    if error is not None:
        raise type(error)(f"{what}: {error}")


def _name_error(name: str) -> InvalidName | None:
    """:func:`name_problem` as an error: NameTooLong for a name over :data:`MAX_NAME_BYTES`."""
    if name in ("", ".", ".."):
        return InvalidName(f"the name {name!r} is reserved")
    if "/" in name:
        return InvalidName("the name contains '/'")
    if "\0" in name:
        return InvalidName("the name contains NUL")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return InvalidName("the name is not valid Unicode")
    if size > MAX_NAME_BYTES:
        return NameTooLong(f"the name is {size} bytes long (at most {MAX_NAME_BYTES})")
    return None


#: What the portal refuses in a name it stores (Windows rules, docs/PROTOCOL-CHOICES.md):
#: the forbidden characters and controls, a trailing dot or space, DOS device names.
_REFUSED_CHARACTERS = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')
_DEVICE_NAME = re.compile(r"(?i)^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$")


def storable_name_error(name: str) -> InvalidName | None:
    """The error (InvalidName, NameTooLong for a name too long) saying why the portal
    would refuse to store ``name``, or None: checked before a create, so the writer
    gets EINVAL (ENAMETOOLONG) at once rather than a failed upload later."""
    error = _name_error(name)
    if error is not None:
        return error
    if _REFUSED_CHARACTERS.search(name):
        return InvalidName('the portal does not accept \\ / : * ? " < > | or control characters in names')
    if name[-1] in ". ":
        return InvalidName("the portal does not accept names ending with a dot or a space")
    if _DEVICE_NAME.match(name):
        return InvalidName(f"{name!r} is a reserved device name")
    return None
