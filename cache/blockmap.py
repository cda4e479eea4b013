"""A set of block indices kept as a bitmap: which blocks of a staged file are on disk.

The problem: a staged file remembers, for every block, whether its bytes are
in the local data file ("present") or still come from the remote base
version. Files can be large (a 1 TiB file has a million 1 MiB blocks) and the
set is saved in the journal at every commit, so it must be compact, cheap to
serialise and cheap to change a range at a time. A Python ``set[int]`` costs
tens of bytes per member; a bitmap costs one bit.

Subtleties:

* ``count`` is kept up to date on every change (by popcount of the bytes a
  change touches), because the store's disk accounting asks for it on every
  write.
* ``to_bytes`` drops trailing zero bytes, so an empty map serialises to
  ``b""`` and a map that was truncated saves no dead tail; ``from_bytes``
  accepts any length.
* Bit ``i`` lives in byte ``i >> 3`` under mask ``1 << (i & 7)``; this is the
  persisted format, so it must never change without a journal schema bump.
"""

from __future__ import annotations

from collections.abc import Iterator


def _popcount(data: bytes | bytearray) -> int:
    return int.from_bytes(data, "little").bit_count()


class BlockMap:
    """A mutable set of non-negative block indices."""

    __slots__ = ("_bits", "_count")

    def __init__(self) -> None:
        self._bits = bytearray()
        self._count = 0

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockMap:
        """The map saved by ``to_bytes``."""
        result = cls()
        result._bits = bytearray(data)
        result._count = _popcount(data)
        return result

    def to_bytes(self) -> bytes:
        return bytes(self._bits.rstrip(b"\x00"))

    def copy(self) -> BlockMap:
        return BlockMap.from_bytes(bytes(self._bits))

    @property
    def count(self) -> int:
        """How many indices are in the map."""
        return self._count

    def __contains__(self, index: int) -> bool:
        byte = index >> 3
        return 0 <= byte < len(self._bits) and bool(self._bits[byte] & (1 << (index & 7)))

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        for byte_index, byte in enumerate(self._bits):
            if byte:
                for bit in range(8):
                    if byte & (1 << bit):
                        yield (byte_index << 3) | bit

    def last(self) -> int | None:
        """The largest index in the map, or ``None`` if it is empty."""
        stripped = self._bits.rstrip(b"\x00")
        if not stripped:
            return None
        return (len(stripped) - 1) * 8 + stripped[-1].bit_length() - 1

    def set_range(self, start: int, stop: int, value: bool = True) -> None:
        """Add (``value``) or remove every index in ``[start, stop)``."""
        if start >= stop:
            return
        if not value:
            stop = min(stop, len(self._bits) * 8)
            if start >= stop:
                return
        first_byte, last_byte = start >> 3, (stop - 1) >> 3
        if last_byte >= len(self._bits):
            self._bits.extend(bytes(last_byte + 1 - len(self._bits)))
        before = _popcount(self._bits[first_byte:last_byte + 1])
        # Whole bytes in the middle by slice assignment; the ragged ends bit by bit.
        full_from = (start + 7) >> 3
        full_to = stop >> 3
        if full_from < full_to:
            self._bits[full_from:full_to] = (b"\xff" if value else b"\x00") * (full_to - full_from)
        for index in (*range(start, min(stop, full_from << 3)),
                      *range(max(start, full_to << 3, full_from << 3), stop)):
            mask = 1 << (index & 7)
            if value:
                self._bits[index >> 3] |= mask
            else:
                self._bits[index >> 3] &= ~mask & 0xFF
        self._count += _popcount(self._bits[first_byte:last_byte + 1]) - before

    def add(self, index: int) -> None:
        self.set_range(index, index + 1, True)

    def discard(self, index: int) -> None:
        self.set_range(index, index + 1, False)

    def truncate(self, stop: int) -> None:
        """Remove every index ``>= stop``."""
        self.set_range(stop, len(self._bits) * 8, False)
        del self._bits[(stop + 7) >> 3:]

    def count_range(self, start: int, stop: int) -> int:
        """How many indices of ``[start, stop)`` are in the map."""
        stop = min(stop, len(self._bits) * 8)
        if start >= stop:
            return 0
        full_from, full_to = (start + 7) >> 3, stop >> 3
        if full_from >= full_to:
            return sum(1 for index in range(start, stop) if index in self)
        ragged = (*range(start, full_from << 3), *range(full_to << 3, stop))
        return _popcount(self._bits[full_from:full_to]) + sum(1 for i in ragged if i in self)

    def runs(self, start: int, stop: int) -> Iterator[tuple[int, int, bool]]:
        """Maximal runs ``(first, end, present)`` covering ``[start, stop)`` in order."""
        run_start = start
        while run_start < stop:
            present = run_start in self
            run_end = run_start + 1
            while run_end < stop and (run_end in self) == present:
                run_end += 1
            yield run_start, run_end, present
            run_start = run_end

    def __repr__(self) -> str:
        return f"BlockMap({sorted(self)!r})"
