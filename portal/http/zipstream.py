"""A ZIP archive written front to back, for replies sent while they are made.

Why not ``zipfile``: it produces the same format, but an entry costs it
tens of microseconds of Python (an entry object, a writer object, a header
built field by field, a data descriptor, a flush).  An archive of a folder of
small files is exactly what a client asks for to save a request per file,
so that per-entry cost was a fifth of the reference portal's CPU when a
client read a tree of 4 KiB files (docs/PERFORMANCE.md).  Here an entry is a
couple of ``struct.pack`` calls and a ``zlib.crc32``.

What is written: stored entries (no compression); UTF-8 names flagged as
such; Unix modes in the central directory.  A file whose bytes are all at
hand gets its sizes and CRC in its local header.  A file streamed in pieces
gets a ZIP64 data descriptor after them (its size is only known at the
end), and the ZIP64 end records are added whenever a count, a size or an
offset outgrows the classic fields.  Readers that look at the central
directory (Python's ``zipfile``, ``unzip``, libarchive) read both kinds;
one that only streams the local headers (Java's ``ZipInputStream``)
refuses a stored entry with a data descriptor, as it refused the
``zipfile`` archives before; the portal streams only files over 64 KiB
(``SMALL_FILE`` in portal/http/archive.py).

Each method returns the bytes to send next; nothing is buffered here except
the central directory, which :meth:`ZipStream.finish` returns.
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

__all__ = ["ZipStream"]

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_DESCRIPTOR64 = struct.Struct("<IIQQ")
_END = struct.Struct("<IHHHHIIH")
_END64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")

_UTF8 = 1 << 11
_DESCRIPTOR_FOLLOWS = 1 << 3
_CLASSIC = 20  # version needed: plain stored entries
_ZIP64 = 45
_MADE_BY_UNIX = 3 << 8
_LIMIT32 = 0xFFFFFFFF
_LIMIT16 = 0xFFFF
_FILE_MODE = 0o100644 << 16
_FOLDER_MODE = (0o040755 << 16) | 0x10  # the MS-DOS directory bit too
_FIRST_MOMENT = (1980, 1, 1, 0, 0, 0)
_LAST_MOMENT = (2107, 12, 31, 23, 59, 58)


def dos_time(mtime: float) -> tuple[int, int]:
    """``mtime`` (UTC) as the MS-DOS (time, date) pair, clamped to the years the format holds (1980–2107)."""
    moment = min(max(tuple(time.gmtime(mtime)[:6]), _FIRST_MOMENT), _LAST_MOMENT)
    year, month, day, hour, minute, second = moment
    return (hour << 11) | (minute << 5) | (second // 2), ((year - 1980) << 9) | (month << 5) | day


@dataclass
class _Streamed:
    """The file being streamed: what its central record needs, the CRC and size as they grow."""

    encoded: bytes
    flags: int
    stamp: tuple[int, int]
    offset: int
    crc: int = 0
    size: int = 0


class ZipStream:
    """The bytes of one archive, entry by entry, then :meth:`finish`."""

    def __init__(self) -> None:
        self._offset = 0  # bytes produced so far
        self._central: list[bytes] = []
        self._streaming: _Streamed | None = None

    def folder(self, name: str, mtime: float) -> bytes:
        """A folder entry (``name`` without its trailing slash)."""
        return self._whole(name + "/", mtime, b"", _FOLDER_MODE)

    def file(self, name: str, mtime: float, data: bytes | bytearray) -> bytes:
        """A file whose bytes are all at hand."""
        return self._whole(name, mtime, data, _FILE_MODE)

    def begin_file(self, name: str, mtime: float) -> bytes:
        """The header of a file whose bytes follow through :meth:`file_data`, then :meth:`end_file`."""
        assert self._streaming is None, "one streamed file at a time"
        encoded, flags = _name(name)
        stamp = dos_time(mtime)
        extra = struct.pack("<HHQQ", 1, 16, 0, 0)  # ZIP64: sizes in the descriptor
        header = _LOCAL.pack(0x04034B50, _ZIP64, flags | _DESCRIPTOR_FOLLOWS, 0, *stamp,
                             0, _LIMIT32, _LIMIT32, len(encoded), len(extra)) + encoded + extra
        self._streaming = _Streamed(encoded, flags | _DESCRIPTOR_FOLLOWS, stamp, self._offset)
        return self._produced(header)

    def file_data(self, chunk: bytes | bytearray) -> bytes | bytearray:
        streamed = self._streaming
        assert streamed is not None
        streamed.crc = zlib.crc32(chunk, streamed.crc)
        streamed.size += len(chunk)
        self._offset += len(chunk)
        return chunk

    def end_file(self) -> bytes:
        streamed, self._streaming = self._streaming, None
        assert streamed is not None
        self._remember(streamed.encoded, streamed.flags, streamed.stamp, streamed.crc, streamed.size,
                       streamed.offset, _FILE_MODE, zip64=True)
        return self._produced(_DESCRIPTOR64.pack(0x08074B50, streamed.crc, streamed.size, streamed.size))

    def finish(self) -> bytes:
        """The central directory and the end records: the archive's last bytes."""
        assert self._streaming is None
        directory = b"".join(self._central)
        start, count = self._offset, len(self._central)
        end = b""
        if count >= _LIMIT16 or start >= _LIMIT32 or len(directory) >= _LIMIT32:
            end64_at = start + len(directory)
            end = _END64.pack(0x06064B50, 44, _MADE_BY_UNIX | _ZIP64, _ZIP64, 0, 0, count, count,
                              len(directory), start) + _LOCATOR64.pack(0x07064B50, 0, end64_at, 1)
        end += _END.pack(0x06054B50, 0, 0, min(count, _LIMIT16), min(count, _LIMIT16),
                         min(len(directory), _LIMIT32), min(start, _LIMIT32), 0)
        return self._produced(directory + end)

    def _whole(self, name: str, mtime: float, data: bytes | bytearray, mode: int) -> bytes:
        encoded, flags = _name(name)
        stamp = dos_time(mtime)
        crc = zlib.crc32(data)
        if len(data) >= _LIMIT32:
            raise ValueError("a file of 4 GiB or more is streamed (begin_file), not passed whole")
        offset = self._offset
        self._remember(encoded, flags, stamp, crc, len(data), offset, mode)
        return self._produced(_LOCAL.pack(0x04034B50, _CLASSIC, flags, 0, *stamp, crc, len(data), len(data),
                                          len(encoded), 0) + encoded + data)

    def _remember(self, encoded: bytes, flags: int, stamp: tuple[int, int], crc: int, size: int, offset: int,
                  mode: int, *, zip64: bool = False) -> None:
        """The entry's central directory record, with ZIP64 fields for what outgrew 32 bits
        (``zip64``: the entry's local part uses ZIP64 already)."""
        wide = [value for value in (size, size, offset) if value >= _LIMIT32]
        extra = struct.pack(f"<HH{len(wide)}Q", 1, 8 * len(wide), *wide) if wide else b""
        size32 = _LIMIT32 if size >= _LIMIT32 else size
        needed = _ZIP64 if wide or zip64 else _CLASSIC
        self._central.append(_CENTRAL.pack(
            0x02014B50, _MADE_BY_UNIX | _ZIP64, needed, flags, 0, *stamp, crc, size32, size32,
            len(encoded), len(extra), 0, 0, 0, mode, min(offset, _LIMIT32)) + encoded + extra)

    def _produced(self, data: bytes) -> bytes:
        self._offset += len(data)
        return data


def _name(name: str) -> tuple[bytes, int]:
    """The name's bytes and flags: UTF-8, flagged as such unless it is plain ASCII."""
    encoded = name.encode("utf-8")
    return encoded, 0 if encoded.isascii() else _UTF8
