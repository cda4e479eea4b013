"""Blocks on disk: file naming, the self-checking formats, atomic writes.

The problem: a block file may be cut short by a crash or a full disk, damaged
by the medium, or (after a power loss, since we do not fsync) be a renamed
file whose data never reached the disk. None of that may ever be served.

Format, a header page then the payload::

    magic     8 bytes   b"PFSBLK2\n"
    length    8 bytes   payload length, big-endian
    crc       4 bytes   CRC-32 over the block's name and the payload
    zeros     up to 4096 bytes (one page)

Subtleties:

* The CRC covers the block's *name* as well as its bytes, so a file that
  somehow ended up under another block's name fails the check instead of
  serving another object's data.
* CRC-32, not a cryptographic hash: it guards against accidental damage
  (torn writes, bit rot), where it is the usual choice, and it is verified on
  every disk hit, so its speed bounds the tier (zlib's CRC-32 runs several
  times faster than BLAKE2b). Deliberate tampering is kept out by the 0700
  directory instead: anyone who can write there could forge any checksum.
* The reader also knows the length it expects (from the ``ObjectKey``), so a
  header that was itself truncated or rewritten cannot make a short block
  pass: file size, header length and expected length must all agree.
* Writes go to a private temp file in ``tmp/`` and are renamed into place:
  a reader sees the old file, the new file or none, never a half-written one.
  A failed write removes its temp file before re-raising. We do not fsync:
  this is a cache, the checksum catches torn files after a power loss, and an
  fsync per block would throttle every large read to the disk's flush rate.
* The header page and the payload's whole pages are written with
  ``O_DIRECT``, in one write from a page-aligned copy (hence the header
  page): a block file is read back rarely (after the memory tier lost it),
  and going around the page cache costs a fraction of the CPU of a buffered
  write (figures in docs/PERFORMANCE.md), CPU that a cold read needs for the
  network and the kernel's FUSE traffic. Only an unaligned tail (the last
  block of an object) goes through the page cache.  (Blocks too small for a
  direct write to pay, under ``PACK_MAX``, never get a file: they go into
  packs, below.) A cache directory whose
  filesystem refuses ``O_DIRECT`` (``EINVAL``) is remembered and written
  buffered from then on (the rules shared with staged files: ``directio``).
* The 256 fan-out folders under ``blocks/`` are made on first use: the
  rename that fails for want of one creates it and is retried once.
* Blocks smaller than ``PACK_MAX`` (a small file's only block) are not given
  a file each: the disk tier writes those of one batch together into a
  *pack* (``packs/<random name>``), each member a small header (magic, the
  block's name, length, CRC as above) and its payload.  Creating, writing
  and renaming a file cost 200–600 µs of CPU per block on the VMs the
  benchmarks run on, more than everything else a small file's read costs
  the mount; a pack costs about a microsecond per member, and the disk
  tier needs no page of padding per small file either.  A pack is written
  from one buffer directly under its final name: until the disk tier's
  index lists its members it is nobody's, and a pack without index rows is
  deleted at the next start like any other leftover.  (When packs die is
  the disk tier's business: see ``disk``.)
* Everything here is blocking file I/O: callers run it in a worker thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import struct
import zlib
from pathlib import Path

from . import directio
from .directio import DIRECT_MIN, PAGE
from .keys import BlockKey

MAGIC = b"PFSBLK2\n"
_HEADER = struct.Struct(">8sQI")
MEMBER_MAGIC = b"PFSPAK1\n"
#: magic, block name (64 hex digits), payload length, CRC
_MEMBER = struct.Struct(">8s64sQI")
MEMBER_HEADER = _MEMBER.size
#: The payload starts at this offset: one page, so that it can be written with O_DIRECT.
HEADER_SIZE = PAGE
BLOCKS_DIR = "blocks"
TMP_DIR = "tmp"
PACKS_DIR = "packs"
#: Payloads smaller than this are stored in packs.
PACK_MAX = DIRECT_MIN


class CorruptBlock(Exception):
    """A block file failed its checks (bad magic, length or CRC)."""


def block_name(key: BlockKey) -> str:
    """The file name of a block: a hash, so any object id is a safe name."""
    # Length-prefixed, so no choice of id and version can collide with another.
    raw = f"{len(key.object_id)}:{key.object_id}{len(key.version)}:{key.version}{key.index}"
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def block_path(root: Path, name: str) -> Path:
    """Where block ``name`` lives; 256 fan-out folders keep directories small."""
    return root / BLOCKS_DIR / name[:2] / name


def file_size(payload_length: int) -> int:
    """The size on disk of a block file holding ``payload_length`` bytes."""
    return HEADER_SIZE + payload_length


def is_packed(payload_length: int) -> bool:
    """Whether a block of ``payload_length`` bytes is stored in a pack."""
    return payload_length < PACK_MAX


def stored_size(payload_length: int) -> int:
    """The bytes a block of ``payload_length`` takes on disk, as a file or a pack member."""
    return MEMBER_HEADER + payload_length if is_packed(payload_length) else file_size(payload_length)


def pack_path(root: Path, pack: str) -> Path:
    return root / PACKS_DIR / pack


def _crc(name: str, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(name.encode("ascii")))


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _open_temp(root: Path, temp: Path) -> tuple[int, bool]:
    """Create ``temp``; returns the fd and whether it was opened with ``O_DIRECT``."""
    fd = directio.open_direct(temp, _CREATE, 0o600, root)
    if fd is not None:
        return fd, True
    temp.unlink(missing_ok=True)  # the refusal may come after the creation
    return os.open(temp, _CREATE, 0o600), False


def _write_direct(fd: int, header: bytes, payload: bytes) -> None:
    """Write the header page and the payload's whole pages in one ``O_DIRECT`` write,
    then the unaligned tail (if any) buffered.

    Raises ``OSError(EINVAL)`` if the filesystem refuses the direct write after all.
    """
    whole = len(payload) - len(payload) % PAGE
    with memoryview(payload) as view, directio.aligned_copy(header, view[:whole]) as copy:
        _write_all(fd, copy)
    if whole < len(payload):
        _clear_direct(fd)
        _write_all(fd, memoryview(payload)[whole:])


def _clear_direct(fd: int) -> None:
    # F_SETFL sets only the status flags (O_APPEND, O_ASYNC, O_DIRECT,
    # O_NOATIME, O_NONBLOCK), and of those the temp file has only O_DIRECT.
    fcntl.fcntl(fd, fcntl.F_SETFL, 0)


def _wrote_direct(root: Path, fd: int, header: bytes, payload: bytes) -> bool:
    """Write the block with ``O_DIRECT``; False if the file system refused it.

    On a refusal (``EINVAL``) ``root`` is written buffered from now on and
    ``fd`` is left without ``O_DIRECT``, at offset 0, for a buffered write.
    """
    try:
        _write_direct(fd, header, payload)
    except OSError as exc:
        if not directio.refused(exc, root):  # opened, but the write was refused: buffered from now on
            raise
        _clear_direct(fd)
        os.lseek(fd, 0, os.SEEK_SET)
        return False
    return True


def write_block_file(root: Path, name: str, payload: bytes) -> int:
    """Atomically store ``payload`` as block ``name``; returns the file size.

    Raises ``OSError`` (``ENOSPC`` and friends) with no temp file left behind.
    """
    header = _HEADER.pack(MAGIC, len(payload), _crc(name, payload)).ljust(HEADER_SIZE, b"\0")
    temp = root / TMP_DIR / f"{name}.{secrets.token_hex(4)}"
    fd, direct = _open_temp(root, temp)
    try:
        try:
            if not (direct and _wrote_direct(root, fd, header, payload)):
                _write_all(fd, header)
                _write_all(fd, payload)
        finally:
            os.close(fd)
        target = block_path(root, name)
        try:
            os.replace(temp, target)
        except FileNotFoundError:  # the first block in this fan-out folder
            target.parent.mkdir(mode=0o700, exist_ok=True)
            os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return file_size(len(payload))


def read_block_file(root: Path, name: str, expected_length: int) -> bytes:
    """The verified payload of block ``name``.

    Raises ``FileNotFoundError`` if there is no such file and
    ``CorruptBlock`` if it fails any check.
    """
    with open(block_path(root, name), "rb") as f:
        # Read one byte more than a correct file holds, so an overlong file
        # is detected without reading an arbitrarily large one.
        data = f.read(HEADER_SIZE + expected_length + 1)
    if len(data) != HEADER_SIZE + expected_length:
        raise CorruptBlock(f"block file {name} has {len(data)} bytes, expected "
                           f"{HEADER_SIZE + expected_length}")
    magic, length, crc = _HEADER.unpack_from(data)
    if magic != MAGIC or length != expected_length:
        raise CorruptBlock(f"block file {name} has a bad header")
    payload = data[HEADER_SIZE:]
    if _crc(name, payload) != crc:
        raise CorruptBlock(f"block file {name} fails its checksum")
    return payload


def remove_block_file(root: Path, name: str) -> None:
    """Delete block ``name`` if it exists."""
    block_path(root, name).unlink(missing_ok=True)


# ------------------------------------------------------------------ packs


def write_pack(root: Path, members: list[tuple[str, bytes]]) -> tuple[str, list[int]]:
    """Store the ``(block name, payload)`` members in one new pack.

    Returns the pack's name and each member's offset in it.  Raises
    ``OSError`` (``ENOSPC`` and friends) with no pack left behind.
    """
    pack = secrets.token_hex(16)
    parts: list[bytes] = []
    offsets: list[int] = []
    position = 0
    for name, payload in members:
        offsets.append(position)
        parts.append(_MEMBER.pack(MEMBER_MAGIC, name.encode("ascii"), len(payload), _crc(name, payload)))
        parts.append(payload)
        position += MEMBER_HEADER + len(payload)
    path = pack_path(root, pack)
    fd = os.open(path, _CREATE, 0o600)
    try:
        try:
            _write_all(fd, b"".join(parts))
        finally:
            os.close(fd)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return pack, offsets


class PackReader:
    """Reads members of packs, opening each pack once (callers read many at a time)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._open: dict[str, int] = {}

    def read(self, pack: str, offset: int, name: str, expected_length: int) -> bytes:
        """The verified payload of block ``name`` at ``offset`` of ``pack``.

        Raises ``FileNotFoundError`` if there is no such pack and
        ``CorruptBlock`` if the member fails any check.
        """
        fd = self._open.get(pack)
        if fd is None:
            fd = self._open[pack] = os.open(pack_path(self._root, pack), os.O_RDONLY | os.O_CLOEXEC)
        data = os.pread(fd, MEMBER_HEADER + expected_length, offset)
        if len(data) != MEMBER_HEADER + expected_length:
            raise CorruptBlock(f"pack {pack} ends inside block {name}")
        magic, member, length, crc = _MEMBER.unpack_from(data)
        if magic != MEMBER_MAGIC or member != name.encode("ascii") or length != expected_length:
            raise CorruptBlock(f"pack {pack} has no block {name} at {offset}")
        payload = data[MEMBER_HEADER:]
        if _crc(name, payload) != crc:
            raise CorruptBlock(f"block {name} in pack {pack} fails its checksum")
        return payload

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()


def remove_pack(root: Path, pack: str) -> None:
    """Delete pack ``pack`` if it exists."""
    pack_path(root, pack).unlink(missing_ok=True)
