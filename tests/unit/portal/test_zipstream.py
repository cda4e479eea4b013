"""The portal's ZIP writer (portal/http/zipstream.py), read back by Python's ``zipfile`` and by ``unzip -t``."""

from __future__ import annotations

import calendar
import io
import os
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from portal.http.zipstream import ZipStream, dos_time

WHEN = calendar.timegm((2024, 5, 17, 13, 45, 30))


def archive_of(*parts: bytes | bytearray) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(parts)))


def test_whole_and_streamed_files_and_folders_read_back() -> None:
    stream = ZipStream()
    parts = [stream.folder("Docs", WHEN), stream.file("Docs/a.txt", WHEN, b"alpha\n"),
             stream.begin_file("Docs/big.bin", WHEN)]
    big = os.urandom(300_000)
    parts += [stream.file_data(big[:100_000]), stream.file_data(big[100_000:]), stream.end_file()]
    parts += [stream.file("empty", WHEN, b""), stream.finish()]
    with archive_of(*parts) as archive:
        assert archive.testzip() is None  # every CRC checked
        assert archive.namelist() == ["Docs/", "Docs/a.txt", "Docs/big.bin", "empty"]
        assert archive.read("Docs/a.txt") == b"alpha\n"
        assert archive.read("Docs/big.bin") == big
        assert archive.read("empty") == b""
        folder, small = archive.getinfo("Docs/"), archive.getinfo("Docs/a.txt")
        assert folder.is_dir() and (folder.external_attr >> 16) & 0o170000 == 0o040000
        assert (small.external_attr >> 16) == 0o100644
        assert small.date_time == (2024, 5, 17, 13, 45, 30)
        streamed = archive.getinfo("Docs/big.bin")
        assert streamed.flag_bits & 0x08 and streamed.extract_version == 45  # ZIP64 sizes follow the data
        assert small.extract_version == 20


def test_names_beyond_ascii_are_flagged_utf8() -> None:
    stream = ZipStream()
    body = stream.file("Überweisung – März.pdf", WHEN, b"%PDF") + stream.file("plain.txt", WHEN, b"x")
    with archive_of(body, stream.finish()) as archive:
        unicode, plain = archive.infolist()
        assert unicode.filename == "Überweisung – März.pdf" and unicode.flag_bits & 0x800
        assert plain.filename == "plain.txt" and not plain.flag_bits & 0x800


def test_an_empty_selection_is_a_valid_empty_archive() -> None:
    with archive_of(ZipStream().finish()) as archive:
        assert archive.namelist() == []


def test_times_outside_1980_to_2107_are_clamped_to_the_formats_range() -> None:
    assert dos_time(0) == (0, (1 << 5) | 1)
    last = (23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31
    assert dos_time(calendar.timegm((2150, 6, 1, 0, 0, 0))) == last
    stream = ZipStream()
    with archive_of(stream.file("future.txt", 1e10, b"x"), stream.finish()) as archive:
        assert archive.getinfo("future.txt").date_time == (2107, 12, 31, 23, 59, 58)


def test_more_entries_than_the_classic_count_holds_use_zip64_end_records() -> None:
    """Python's zipfile reads the directory by its size and would list every entry without the
    ZIP64 records, so the records themselves are checked: the classic count saturates at 0xFFFF,
    the ZIP64 end record holds the real one, and its locator points at it."""
    stream = ZipStream()
    parts = [stream.file(f"f{index}", WHEN, b"") for index in range(70_000)]
    whole = b"".join([*parts, stream.finish()])
    classic = struct.unpack("<IHHHHIIH", whole[-22:])
    assert (classic[0], classic[3], classic[4]) == (0x06054B50, 0xFFFF, 0xFFFF)
    signature, _, record_at, _ = struct.unpack("<IIQI", whole[-42:-22])
    assert signature == 0x07064B50 and record_at == len(whole) - 42 - 56
    record = struct.unpack("<IQHHIIQQQQ", whole[record_at:record_at + 56])
    assert (record[0], record[6], record[7]) == (0x06064B50, 70_000, 70_000)
    with archive_of(whole) as archive:
        assert len(archive.infolist()) == 70_000
        assert archive.infolist()[-1].filename == "f69999"


@pytest.mark.skipif(shutil.which("unzip") is None, reason="no unzip")
def test_unzip_tests_every_entry(tmp_path: Path) -> None:
    stream = ZipStream()
    parts = [stream.folder("Docs", WHEN), stream.file("Docs/ä.txt", WHEN, b"alpha\n"), stream.begin_file("b", WHEN),
             stream.file_data(os.urandom(100_000)), stream.end_file(), stream.finish()]
    path = tmp_path / "a.zip"
    path.write_bytes(b"".join(parts))
    result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout


@pytest.mark.skipif(shutil.which("unzip") is None, reason="no unzip")
def test_an_archive_past_4_gib_reads_back(tmp_path: Path) -> None:
    """Offsets and sizes beyond 32 bits: a sparse file of 4.1 GiB, so the test needs no such disk space."""
    stream = ZipStream()
    zeros = bytes(64 << 20)
    path = tmp_path / "big.zip"
    with open(path, "wb") as out:
        out.write(stream.begin_file("zeros.bin", WHEN))
        for _ in range(66):  # 4.125 GiB
            out.seek(len(stream.file_data(zeros)), os.SEEK_CUR)  # the bytes are zeros: leave a hole
        out.write(stream.end_file())
        out.write(stream.file("after.txt", WHEN, b"still here\n"))
        out.write(stream.finish())
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("zeros.bin").file_size == 66 * (64 << 20)
        assert archive.getinfo("after.txt").header_offset > 1 << 32
        assert archive.read("after.txt") == b"still here\n"
    listing = subprocess.run(["unzip", "-l", str(path)], capture_output=True, text=True, check=True).stdout
    assert "4429185024" in listing and "after.txt" in listing
    with open(path, "rb") as raw:  # the streamed entry's ZIP64 data descriptor, just before the next entry
        raw.seek(archive.getinfo("after.txt").header_offset - 24)
        signature, _, compressed, size = struct.unpack("<IIQQ", raw.read(24))
    assert (signature, compressed, size) == (0x08074B50, 66 * (64 << 20), 66 * (64 << 20))
