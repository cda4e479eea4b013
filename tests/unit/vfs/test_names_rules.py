"""The two naming rules of the write path: which names stay local, and what a conflict copy is called.

* The default exclude list (:mod:`vfs.exclusions`) must catch the lock,
  swap and temporary files of the applications the save patterns come from
  — otherwise every save litters the portal and its recycle bin — and must
  not catch ordinary names that merely look alike (``tmp``, ``~a``), or a
  user's real file would silently never be uploaded.
* Conflict copies (:mod:`vfs.conflicts`) must keep the extension last so
  the copy still opens in its application, handle names without one, and
  never take a name already in the folder (that would be the silent
  overwrite the conflict copy exists to avoid).
"""

from __future__ import annotations

import time

import pytest

from vfs.conflicts import conflict_name, split_extension
from vfs.exclusions import DEFAULT_EXCLUDES, Exclusions

# ---------------------------------------------------------------- exclusions


@pytest.mark.parametrize("name", [
    ".~lock.a.odt#",  # LibreOffice
    "~$a.docx",  # Microsoft Office owner file
    ".a.swp", ".a.swo", ".a.swx",  # vim swap files
    "a~",  # vim/emacs/gedit backup
    ".#a.txt",  # emacs lock link
    ".goutputstream-ABC",  # GLib atomic replace
    "x.tmp", "~WRL0001.tmp",  # Word's backup, many temporaries
])
def test_default_excludes_catch_lock_swap_and_temporary_files(name: str) -> None:
    assert Exclusions().matches(name)


@pytest.mark.parametrize("name", [
    "a.txt", "tmp", "~a", "a.tmp.txt", "report.docx", "a.swp", ".~lock.a.odt", "goutputstream-ABC", "x.TMP",
    "lock#", "a~b",
])
def test_default_excludes_leave_ordinary_names_alone(name: str) -> None:
    assert not Exclusions().matches(name)


def test_patterns_match_the_name_not_the_path() -> None:
    assert not Exclusions(["*.tmp"]).matches("folder.tmp/a.txt")
    assert Exclusions(["*.tmp"]).matches("a.tmp")


def test_an_empty_list_excludes_nothing_and_a_custom_list_only_itself() -> None:
    assert not Exclusions([]).matches("x.tmp")
    custom = Exclusions(["*.bak"])
    assert custom.matches("a.bak")
    assert not custom.matches("x.tmp")
    assert Exclusions().patterns == DEFAULT_EXCLUDES


# ------------------------------------------------------------ conflict names

#: 2026-11-22 10:10:10 local time, as the conflict copy names it
WHEN = time.mktime((2026, 11, 22, 10, 10, 10, 0, 0, -1))
STAMP = "2026-11-22 101010"


@pytest.mark.parametrize(("name", "expected"), [
    ("report.docx", f"report (conflict {STAMP}).docx"),
    ("archive.tar.gz", f"archive.tar (conflict {STAMP}).gz"),
    ("Makefile", f"Makefile (conflict {STAMP})"),
    (".bashrc", f".bashrc (conflict {STAMP})"),  # a dot-file has no extension
    ("notes.", f"notes. (conflict {STAMP})"),
    ("v1.0 final", f"v1.0 final (conflict {STAMP})"),  # "0 final" is no extension
])
def test_conflict_copies_keep_the_extension_last(name: str, expected: str) -> None:
    assert conflict_name(name, WHEN) == expected


def test_taken_conflict_names_get_a_counter() -> None:
    first = f"report (conflict {STAMP}).docx"
    second = f"report (conflict {STAMP} 2).docx"
    assert conflict_name("report.docx", WHEN, {first}) == second
    assert conflict_name("report.docx", WHEN, {first, second}) == f"report (conflict {STAMP} 3).docx"
    assert conflict_name("report.docx", WHEN, {"report.docx", second}) == first


def test_split_extension() -> None:
    assert split_extension("a.b.c") == ("a.b", ".c")
    assert split_extension(".hidden") == (".hidden", "")
    assert split_extension("plain") == ("plain", "")
    assert split_extension("x." + "e" * 17) == ("x." + "e" * 17, "")
