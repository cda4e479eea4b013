"""What a cached block belongs to, and the arithmetic of cutting objects into blocks.

The problem: a cache that serves file content must never hand out bytes of
one remote version when another was asked for. Paths and inode numbers are
useless as keys for that (a file is renamed, overwritten, re-created under
the same name); the remote identity plus an opaque version tag is not. So a
block is named by ``(object_id, version, block index)`` and nothing else.

Subtleties:

* ``ObjectKey.size`` belongs to the version: two keys with equal
  ``object_id`` and ``version`` must carry the same size (a caller bug
  otherwise). Blocks are therefore keyed without the size, and the size of a
  block is always derived from the ``ObjectKey`` that asks for it.
* Every block is ``block_size`` bytes except the last of an object, which is
  shorter (``size % block_size``) — never empty: an empty object has no
  blocks at all.
* ``BlockKey`` is a ``NamedTuple`` rather than a dataclass because it is the
  dictionary key of every hot-path lookup and tuple hashing runs in C.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

Fetch = Callable[[int, int], Awaitable[bytes]]
"""``fetch(offset, length)``: the object's bytes from ``offset``.

At least ``length`` bytes unless the object ends first; it may return more
(a server that ignored a Range). It raises whatever the backend raises.
"""


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """One version of one remote object: what a block belongs to."""

    object_id: str
    """Stable remote identity, e.g. ``"ctera:4711"``; never a path or an inode."""
    version: str
    """Opaque; a new remote version has a new value."""
    size: int
    """Total size of that version in bytes."""

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"object size must not be negative, got {self.size}")


class BlockKey(NamedTuple):
    """The name of one cached block: version-exact, path-free."""

    object_id: str
    version: str
    index: int


def block_key(key: ObjectKey, index: int) -> BlockKey:
    """The name of block ``index`` of ``key``."""
    return BlockKey(key.object_id, key.version, index)


def block_count(size: int, block_size: int) -> int:
    """How many blocks an object of ``size`` bytes has (0 for an empty one)."""
    return -(-size // block_size)


def block_length(key: ObjectKey, index: int, block_size: int) -> int:
    """The payload length of block ``index`` of ``key``; 0 past the end."""
    start = index * block_size
    return max(0, min(block_size, key.size - start))
