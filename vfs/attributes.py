"""Plain answers of the filesystem model: what the kernel is told, without pyfuse3.

The mount layer copies these into pyfuse3's structures; nothing here knows
about FUSE, so the model can be tested without a kernel.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Attributes:
    inode: int
    mode: int
    size: int
    mtime_ns: int
    nlink: int
    uid: int
    gid: int
    generation: int = 0

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def blocks(self) -> int:
        """512-byte blocks, rounded up (what ``du`` shows)."""
        return (self.size + 511) // 512


@dataclass(frozen=True, slots=True)
class Entry:
    """A lookup answer: ``attributes`` None is a negative entry the kernel may cache."""

    attributes: Attributes | None
    entry_timeout: float
    attr_timeout: float


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: str
    entry: Entry
    next_offset: int


@dataclass(frozen=True, slots=True)
class OpenFile:
    handle: int
    keep_cache: bool
    direct_io: bool = False


@dataclass(frozen=True, slots=True)
class FsStats:
    block_size: int
    blocks: int
    blocks_free: int
    files: int
    files_free: int
    name_max: int = 255
