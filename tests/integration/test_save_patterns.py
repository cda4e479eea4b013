"""How applications save, through a real mount: one new version of the same portal file.

Few applications write a document in place.  They write a temporary file and
rename it over the original, shuffle the original aside first, delete it
first, surround the save with lock and swap files, or keep a database's
journal next to it.  On the portal each of these must end as exactly one new
version of the *same* file (same ``fileId``, one more stored version), with
the new bytes, and with no temporary, backup or lock file left in the folder
or in its recycle bin (issue 4, "identity-preserving saves").

Each test builds the document through the mount first and waits until the
portal has it, then performs the save exactly as the application does it —
the same ``open`` flags, writes, ``fsync`` calls, renames and unlinks in the
same order, or the real program where it is installed (``sed``, ``vim``,
``ex``, ``sqlite3``, ``git``, ``rsync``, ``tar``) — and then checks the
portal through :class:`PortalView`, a client independent of the mount.
Before counting versions a test waits until the mount's upload queue is
quiet (``portalfs status``), so a late extra upload cannot slip past.
"""

from __future__ import annotations

import io
import os
import sqlite3
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mount_process import MountProcess, mounted
from tests.support.portal_process import PortalProcess, run_ok
from tests.support.portal_view import PortalView, local_tree, portal_view
from tests.support.portalfs_cli import wait_until_quiet

pytestmark = pytest.mark.fuse

UPLOAD_DELAY = "upload_delay=0.5"


# ---------------------------------------------------------------- fixtures and checks


@pytest.fixture
def view(portal: PortalProcess) -> Iterator[PortalView]:
    with portal_view(portal) as client:
        yield client


@pytest.fixture
def mount(portal: PortalProcess, tmp_path: Path) -> Iterator[MountProcess]:
    with mounted(portal, tmp_path / "mnt", options=[UPLOAD_DELAY]) as process:
        yield process


def wait_for_content(view: PortalView, mount: MountProcess, relative: str, content: bytes) -> None:
    view.wait_for(lambda: view.exists(relative) and view.read(relative) == content,
                  what=f"{relative} with the expected bytes")
    wait_until_quiet(mount)


@dataclass(frozen=True)
class Document:
    """A file that exists on the portal before a save: where, which identity, how many versions."""

    relative: str
    file_id: str
    uploads: int
    deleted_before: frozenset[str]

    @property
    def folder(self) -> str:
        return self.relative.rpartition("/")[0]

    @property
    def name(self) -> str:
        return self.relative.rpartition("/")[2]


def existing_document(mount: MountProcess, view: PortalView, relative: str, content: bytes) -> Document:
    """Write ``relative`` through the mount and wait until it is on the portal."""
    path = mount.mountpoint / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    wait_for_content(view, mount, relative, content)
    folder = relative.rpartition("/")[0]
    return Document(relative, view.file_id(relative), view.uploads_of(relative), frozenset(view.deleted_names(folder)))


def assert_saved_once(mount: MountProcess, view: PortalView, document: Document, content: bytes) -> None:
    """The save became exactly one new version of the same portal file, and left nothing else behind."""
    wait_for_content(view, mount, document.relative, content)
    assert view.file_id(document.relative) == document.file_id, "the save made a new portal file"
    assert view.uploads_of(document.relative) == document.uploads + 1, "not exactly one new version"
    assert view.names(document.folder) == {document.name}, "stray files on the portal"
    assert (mount.mountpoint / document.relative).read_bytes() == content
    new_in_bin = view.deleted_names(document.folder) - document.deleted_before
    assert not new_in_bin, f"temporary files reached the portal (now in its recycle bin): {new_in_bin}"


def write_new(path: Path, content: bytes, *, flags: int = os.O_WRONLY | os.O_CREAT | os.O_EXCL,
              mode: int = 0o666, fsync: bool = False) -> None:
    fd = os.open(path, flags, mode)
    try:
        os.write(fd, content)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def listing(folder: Path) -> list[str]:
    """The names in a folder of the mount, without the ``.snapshots`` that every folder resolves."""
    return sorted(set(os.listdir(folder)) - {".snapshots"})


# ---------------------------------------------------------------- 1. temp file, rename over the original


def test_gedit_goutputstream_rename_over(mount: MountProcess, view: PortalView) -> None:
    """GLib's g_file_replace: ``.goutputstream-XXXXXX`` (O_EXCL, the original's mode), fsync, rename, then close."""
    document = existing_document(mount, view, "letter.txt", b"Dear Sir,\n")
    folder = mount.mountpoint
    temp = folder / ".goutputstream-K3J9QZ"
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        os.fchmod(fd, (folder / "letter.txt").stat().st_mode & 0o7777)
        os.write(fd, b"Dear Madam,\n")
        os.fsync(fd)
        os.rename(temp, folder / "letter.txt")  # GLib renames before it closes the descriptor
    finally:
        os.close(fd)
    assert_saved_once(mount, view, document, b"Dear Madam,\n")


def save_word_temp_over(folder: Path, name: str, content: bytes) -> None:
    """Word's simple save: a new ``~WRD0001.tmp``, renamed over the document."""
    write_new(folder / "~WRD0001.tmp", content)
    os.replace(folder / "~WRD0001.tmp", folder / name)


def test_word_temp_renamed_over_the_original(mount: MountProcess, view: PortalView) -> None:
    document = existing_document(mount, view, "Reports/q3.docx", b"PK\x03\x04 draft")
    save_word_temp_over(mount.mountpoint / "Reports", "q3.docx", b"PK\x03\x04 final version")
    assert_saved_once(mount, view, document, b"PK\x03\x04 final version")


def test_sed_in_place_scripted(mount: MountProcess, view: PortalView) -> None:
    """GNU sed -i: mkstemp ``sedXXXXXX`` beside the file, copy its mode, write, close, rename over."""
    document = existing_document(mount, view, "config.ini", b"mode=draft\n")
    target = mount.mountpoint / "config.ini"
    temp = mount.mountpoint / "sedXk2P9a"
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, target.stat().st_mode & 0o7777)
        os.write(fd, target.read_bytes().replace(b"draft", b"final"))
    finally:
        os.close(fd)
    os.rename(temp, target)
    assert_saved_once(mount, view, document, b"mode=final\n")


def test_real_sed_in_place(mount: MountProcess, view: PortalView) -> None:
    document = existing_document(mount, view, "Docs/notes.md", b"# Notes\nstatus: draft\n")
    run_ok("sed", "-i", "s/draft/final/", mount.mountpoint / "Docs" / "notes.md")
    assert_saved_once(mount, view, document, b"# Notes\nstatus: final\n")


# ---------------------------------------------------------------- 2. rename aside, rename in, delete the backup


def save_word_backup_dance(folder: Path, name: str, content: bytes) -> None:
    """Word: owner file ``~$…``, temp ``~WRD0001.tmp``, original → ``~WRL0001.tmp``, temp → original,
    then the backup and the owner file are deleted."""
    owner = folder / f"~${name[2:]}"
    write_new(owner, b"\x05alice" + b"\x00" * 48)
    write_new(folder / "~WRD0001.tmp", content)
    os.rename(folder / name, folder / "~WRL0001.tmp")
    os.rename(folder / "~WRD0001.tmp", folder / name)
    os.unlink(folder / "~WRL0001.tmp")
    os.unlink(owner)


# ---------------------------------------------------------------- 3. delete the original, rename the temp in


def save_excel_style(folder: Path, name: str, content: bytes) -> None:
    """Excel: owner file, a temp named by eight hex digits, delete the original, rename the temp to its name."""
    owner = folder / f"~${name}"
    write_new(owner, b"\x05alice" + b"\x00" * 48)
    write_new(folder / "8C3D5E10", content)
    os.unlink(folder / name)
    os.rename(folder / "8C3D5E10", folder / name)
    os.unlink(owner)


@pytest.mark.parametrize(("relative", "before", "save", "after"), [
    pytest.param("Contracts/lease.docx", b"PK\x03\x04 lease v1", save_word_backup_dance,
                 b"PK\x03\x04 lease v2, signed", id="word-backup-dance"),
    pytest.param("Budget/2024.xlsx", b"PK\x03\x04 totals 100", save_excel_style, b"PK\x03\x04 totals 250",
                 id="excel-delete-first"),
])
def test_a_save_that_moves_the_original_away_leaves_only_the_document(
        mount: MountProcess, view: PortalView, relative: str, before: bytes,
        save: Callable[[Path, str, bytes], None], after: bytes) -> None:
    """Word's rename-aside and Excel's delete-first: the document is the only name left, locally too."""
    document = existing_document(mount, view, relative, before)
    folder = mount.mountpoint / document.folder
    save(folder, document.name, after)
    assert_saved_once(mount, view, document, after)
    assert listing(folder) == [document.name]


@pytest.mark.parametrize("save", [
    pytest.param(save_word_temp_over, id="temp-over"),
    pytest.param(save_word_backup_dance, id="word-backup-dance"),
    pytest.param(save_excel_style, id="excel-delete-first"),
])
def test_a_reader_of_the_original_keeps_reading_it_through_a_save(mount: MountProcess, view: PortalView,
                                                                   save: Callable[[Path, str, bytes], None]) -> None:
    """A viewer or indexer that opened the document before the save still reads the old bytes (POSIX)."""
    document = existing_document(mount, view, "shared.xlsx", b"PK\x03\x04 as opened")
    with open(mount.mountpoint / "shared.xlsx", "rb") as reader:
        save(mount.mountpoint, "shared.xlsx", b"PK\x03\x04 as saved")
        assert reader.read() == b"PK\x03\x04 as opened"
    assert_saved_once(mount, view, document, b"PK\x03\x04 as saved")


# ---------------------------------------------------------------- 4. LibreOffice


def test_libreoffice_lock_temp_rename(mount: MountProcess, view: PortalView) -> None:
    """The lock file lives for the whole editing session and never reaches the portal."""
    document = existing_document(mount, view, "Minutes.odt", b"PK\x03\x04 minutes: draft")
    folder = mount.mountpoint
    lock = folder / ".~lock.Minutes.odt#"
    write_new(lock, b"alice,alice,host,22.11.2024 10:00,file:///home/alice/.config/libreoffice/4;")
    time.sleep(1.5)  # the user edits for a while: longer than the upload delay
    write_new(folder / "lu27451gk2a.tmp", b"PK\x03\x04 minutes: approved", flags=os.O_RDWR | os.O_CREAT | os.O_EXCL,
              mode=0o600, fsync=True)
    os.rename(folder / "lu27451gk2a.tmp", folder / "Minutes.odt")
    wait_for_content(view, mount, "Minutes.odt", b"PK\x03\x04 minutes: approved")
    assert lock.exists(), "the lock file is still held while the document is open"
    assert view.names() == {"Minutes.odt"}, "the lock file reached the portal while the document was open"
    os.unlink(lock)
    assert_saved_once(mount, view, document, b"PK\x03\x04 minutes: approved")


# ---------------------------------------------------------------- 5. vim


VIM = ("vim", "-es", "-i", "NONE", "-N", "-u", "DEFAULTS",
       "-c", "set backupskip=")  # backupskip covers /tmp/*, where the tests run; elsewhere it is empty


def test_vim_writebackup_renames_the_original_aside(mount: MountProcess, view: PortalView) -> None:
    """vim's defaults (backupcopy=auto): swap file, probe file ``4913``, original → ``NAME~``,
    a new NAME written and fsynced, then ``NAME~`` deleted."""
    document = existing_document(mount, view, "src/main.c", b"int main(void) { return 1; }\n")
    run_ok(*VIM, "-c", "%s/return 1/return 0/", "-c", "wq", mount.mountpoint / "src" / "main.c")
    assert_saved_once(mount, view, document, b"int main(void) { return 0; }\n")
    assert listing(mount.mountpoint / "src") == ["main.c"]


def test_vim_with_backup_keeps_the_backup_local(mount: MountProcess, view: PortalView) -> None:
    document = existing_document(mount, view, "todo.txt", b"- buy milk\n")
    run_ok(*VIM, "-c", "set backup", "-c", "$put ='- call mum'", "-c", "wq", mount.mountpoint / "todo.txt")
    assert_saved_once(mount, view, document, b"- buy milk\n- call mum\n")
    backup = mount.mountpoint / "todo.txt~"
    assert backup.read_bytes() == b"- buy milk\n", "vim's backup is visible in the mount with the old content"


def test_ex_in_compatible_mode_copies_the_backup_and_overwrites(mount: MountProcess, view: PortalView) -> None:
    """``ex`` (vim in 'compatible' mode, backupcopy=yes): copy to ``NAME~``, truncate and rewrite
    NAME in place, fsync, delete ``NAME~``."""
    document = existing_document(mount, view, "hosts.txt", b"alpha\nbeta\n")
    run_ok("ex", "-s", "-i", "NONE", "-c", "set backupskip=", "-c", "1d", "-c", "wq", mount.mountpoint / "hosts.txt")
    assert_saved_once(mount, view, document, b"beta\n")
    assert listing(mount.mountpoint) == ["hosts.txt"]


def test_vim_sequence_scripted(mount: MountProcess, view: PortalView) -> None:
    """vim's rename-backup write, step by step: the new file is fsynced *before* the backup is deleted."""
    document = existing_document(mount, view, "poem.txt", b"roses are red\n")
    folder = mount.mountpoint
    write_new(folder / ".poem.txt.swp", b"b0VIM 9.0" + b"\x00" * 4087, flags=os.O_RDWR | os.O_CREAT | os.O_EXCL,
              mode=0o600)
    write_new(folder / "4913", b"", flags=os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode=0o100644)
    os.unlink(folder / "4913")
    os.rename(folder / "poem.txt", folder / "poem.txt~")
    fd = os.open(folder / "poem.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, b"violets are blue\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(folder / "poem.txt~")
    os.unlink(folder / ".poem.txt.swp")
    assert_saved_once(mount, view, document, b"violets are blue\n")


def test_backup_kept_by_a_rename_save_stays_local_and_readable(mount: MountProcess, view: PortalView) -> None:
    """vim with 'backup' (or any editor that keeps ``NAME~``): the original is renamed to ``NAME~``,
    a new NAME is written and fsynced, and ``NAME~`` stays.  The document gets one new version;
    the backup stays in the mount with the old bytes, local-only by the exclude list."""
    document = existing_document(mount, view, "essay.txt", b"first draft\n")
    folder = mount.mountpoint
    os.rename(folder / "essay.txt", folder / "essay.txt~")
    fd = os.open(folder / "essay.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, b"second draft\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    assert_saved_once(mount, view, document, b"second draft\n")
    assert listing(folder) == ["essay.txt", "essay.txt~"]
    assert (folder / "essay.txt~").read_bytes() == b"first draft\n"


# ---------------------------------------------------------------- 6. appends


def test_each_append_is_one_version(mount: MountProcess, view: PortalView) -> None:
    document = existing_document(mount, view, "logs/app.log", b"started\n")
    log = mount.mountpoint / "logs" / "app.log"
    expected = b"started\n"
    for count, line in enumerate(("request 1", "request 2", "stopped"), start=1):
        run_ok("sh", "-c", f'echo "{line}" >> "$0"', log)
        expected += line.encode() + b"\n"
        wait_for_content(view, mount, "logs/app.log", expected)
        assert view.file_id("logs/app.log") == document.file_id
        assert view.uploads_of("logs/app.log") == document.uploads + count
    with open(log, "ab") as appender:  # Python's "a" is O_APPEND too
        appender.write(b"one more\n")
    assert view.names("logs") == {"app.log"}
    wait_for_content(view, mount, "logs/app.log", expected + b"one more\n")
    assert view.uploads_of("logs/app.log") == document.uploads + 4


# ---------------------------------------------------------------- 7. sqlite


def portal_database(view: PortalView, relative: str, scratch: Path) -> sqlite3.Connection:
    """The portal's copy of a database, downloaded into a local file and opened."""
    local = scratch / relative.replace("/", "_")
    local.write_bytes(view.read(relative))
    return sqlite3.connect(local)


def assert_portal_database(view: PortalView, relative: str, scratch: Path, rows: list[tuple]) -> None:
    database = portal_database(view, relative, scratch)
    try:
        assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert database.execute("SELECT * FROM items ORDER BY id").fetchall() == rows
    finally:
        database.close()


JOURNAL_FILES = ("-journal", "-wal", "-shm")


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_python_sqlite_database(mount: MountProcess, view: PortalView, tmp_path: Path, journal_mode: str) -> None:
    path = mount.mountpoint / "data" / "app.db"
    path.parent.mkdir()
    database = sqlite3.connect(path, isolation_level=None)
    try:
        assert database.execute(f"PRAGMA journal_mode={journal_mode}").fetchone() == (journal_mode,)
        database.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        rows = []
        for batch in range(4):
            database.execute("BEGIN")
            for number in range(batch * 25, batch * 25 + 25):
                database.execute("INSERT INTO items VALUES (?, ?)", (number, f"item {number}"))
                rows.append((number, f"item {number}"))
            database.execute("COMMIT")
        database.execute("UPDATE items SET name = 'changed' WHERE id = 7")
        rows[7] = (7, "changed")
    finally:
        database.close()
    assert listing(path.parent) == ["app.db"]
    view.wait_for(lambda: view.names("data") == {"app.db"}, what="only app.db in data/")
    wait_until_quiet(mount)
    assert view.names("data") == {"app.db"}, "a journal file was left on the portal"
    assert_portal_database(view, "data/app.db", tmp_path, rows)
    leaked = {name for name in view.deleted_names("data") if name.endswith(JOURNAL_FILES)}
    assert not leaked, f"journal files reached the portal (now in its recycle bin): {leaked}"


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_sqlite3_cli_keeps_the_file_identity(mount: MountProcess, view: PortalView, tmp_path: Path,
                                             journal_mode: str) -> None:
    """The real ``sqlite3`` program: a database made, uploaded, then changed in several transactions."""
    run_ok("sqlite3", mount.mountpoint / "shop.db",
        f"PRAGMA journal_mode={journal_mode}; CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);"
        " INSERT INTO items VALUES (1, 'apple');")
    view.wait_for(lambda: view.exists("shop.db"), what="shop.db on the portal")
    wait_until_quiet(mount)
    file_id = view.file_id("shop.db")
    for statement in ("INSERT INTO items VALUES (2, 'pear');",
                      "BEGIN; INSERT INTO items VALUES (3, 'plum'); INSERT INTO items VALUES (4, 'fig'); COMMIT;",
                      "BEGIN; UPDATE items SET name = 'green apple' WHERE id = 1;"
                      " DELETE FROM items WHERE id = 2; COMMIT;"):
        run_ok("sqlite3", mount.mountpoint / "shop.db", statement)
    assert run_ok("sqlite3", mount.mountpoint / "shop.db", "PRAGMA integrity_check;").stdout == "ok\n"
    rows = [(1, "green apple"), (3, "plum"), (4, "fig")]

    def portal_has_the_rows() -> bool:
        assert_portal_database(view, "shop.db", tmp_path, rows)
        return True

    view.wait_for(portal_has_the_rows, what="the portal's shop.db with every row")
    wait_until_quiet(mount)
    assert_portal_database(view, "shop.db", tmp_path, rows)
    assert view.file_id("shop.db") == file_id
    assert view.names() == {"shop.db"}, "a journal file was left on the portal"
    leaked = {name for name in view.deleted_names() if name.endswith(JOURNAL_FILES)}
    assert not leaked, f"journal files reached the portal (now in its recycle bin): {leaked}"


# ---------------------------------------------------------------- 8. git


def make_source_repository(where: Path) -> Path:
    where.mkdir()
    run_ok("git", "init", "-q", "-b", "main", where)
    (where / "README.md").write_text("# demo\n")
    (where / "src").mkdir()
    (where / "src" / "lib.py").write_text("def answer():\n    return 42\n")
    git(where, "add", ".")
    git(where, "commit", "-q", "-m", "first")
    return where


def git(repository: Path, *arguments: str) -> str:
    return run_ok("git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *arguments, cwd=repository).stdout


def test_git_clone_commit_status_inside_the_mount(portal: PortalProcess, view: PortalView, tmp_path: Path) -> None:
    source = make_source_repository(tmp_path / "source")
    with mounted(portal, tmp_path / "mnt", options=[UPLOAD_DELAY]) as mount:
        clone = mount.mountpoint / "clone"
        git(mount.mountpoint, "clone", "-q", f"file://{source}", "clone")
        (clone / "src" / "lib.py").write_text("def answer():\n    return 43\n")
        (clone / "NEWS").write_text("answer changed\n")
        git(clone, "add", "-A")
        git(clone, "commit", "-q", "-m", "second")
        assert git(clone, "status", "--porcelain") == ""
        assert git(clone, "log", "--format=%s") == "second\nfirst\n"
        wait_until_quiet(mount, timeout=60)
        expected = local_tree(mount.mountpoint, "clone")
    assert view.tree("clone") == expected, "the portal's copy differs from what the mount showed"
    assert not {name for name in view.names("clone/.git") if name.endswith(".lock")}

    with mounted(portal, tmp_path / "again", options=[UPLOAD_DELAY], cache_dir=tmp_path / "fresh-cache") as mount:
        clone = mount.mountpoint / "clone"
        assert git(clone, "status", "--porcelain") == ""
        assert git(clone, "log", "--format=%s") == "second\nfirst\n"
        run_ok("git", "fsck", "--strict", "--no-dangling", cwd=clone)
        assert (clone / "src" / "lib.py").read_text() == "def answer():\n    return 43\n"


def test_git_init_and_commit_inside_the_mount(mount: MountProcess, view: PortalView) -> None:
    repository = mount.mountpoint / "project"
    run_ok("git", "init", "-q", "-b", "main", repository)
    (repository / "a.txt").write_text("alpha\n")
    git(repository, "add", "a.txt")
    git(repository, "commit", "-q", "-m", "start")
    (repository / "a.txt").write_text("alpha beta\n")
    git(repository, "commit", "-q", "-am", "more")
    assert git(repository, "status", "--porcelain") == ""
    head = git(repository, "rev-parse", "HEAD").strip()
    wait_until_quiet(mount)
    assert view.read("project/.git/HEAD") == b"ref: refs/heads/main\n"
    assert view.read("project/.git/refs/heads/main").decode().strip() == head
    assert view.read("project/a.txt") == b"alpha beta\n"
    assert view.tree("project") == local_tree(mount.mountpoint, "project")


# ---------------------------------------------------------------- 9. rsync


def test_rsync_archive_then_update_one_file(mount: MountProcess, view: PortalView, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    files = {"a.txt": b"alpha\n", "b.bin": bytes(range(256)) * 40, "sub/c.txt": b"gamma\n", ".hidden": b"h\n"}
    for relative, content in files.items():
        (source / relative).write_bytes(content)
    run_ok("rsync", "-a", f"{source}/", mount.mountpoint / "dst/")
    wait_until_quiet(mount)
    assert view.tree("dst") == {f"dst/{name}": content for name, content in files.items()} | {"dst/sub": None}
    assert not view.deleted_names("dst"), "rsync's temporary files reached the portal"
    file_id, uploads = view.file_id("dst/sub/c.txt"), view.uploads_of("dst/sub/c.txt")
    others = {name: view.uploads_of(f"dst/{name}") for name in ("a.txt", "b.bin", ".hidden")}

    (source / "sub" / "c.txt").write_bytes(b"gamma, revised\n")
    run_ok("rsync", "-a", f"{source}/", mount.mountpoint / "dst/")
    wait_for_content(view, mount, "dst/sub/c.txt", b"gamma, revised\n")
    assert view.file_id("dst/sub/c.txt") == file_id
    assert view.uploads_of("dst/sub/c.txt") == uploads + 1
    assert {name: view.uploads_of(f"dst/{name}") for name in others} == others, "unchanged files were uploaded again"
    assert view.names("dst/sub") == {"c.txt"}
    assert view.names("dst") == {"a.txt", "b.bin", ".hidden", "sub"}
    assert not view.deleted_names("dst/sub"), "rsync's temporary file reached the portal"


# ---------------------------------------------------------------- 10. tar


def test_tar_extract_keeps_contents_and_mtimes(mount: MountProcess, view: PortalView, tmp_path: Path) -> None:
    members = {"tree/readme.txt": (b"read me\n", 1_000_000_000),
               "tree/docs/guide.md": (b"# guide\n" * 100, 1_200_000_000),
               "tree/docs/empty": (b"", 1_300_000_000)}
    folders = {"tree": 900_000_000, "tree/docs": 950_000_000}
    archive = tmp_path / "tree.tar"
    with tarfile.open(archive, "w") as tar:
        for folder, mtime in folders.items():
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(info)
        for name, (content, mtime) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, mtime
            tar.addfile(info, io.BytesIO(content))
    run_ok("tar", "xf", archive, "-C", mount.mountpoint)
    wait_until_quiet(mount)
    assert view.tree("tree") == {"tree/docs": None} | {name: content for name, (content, _) in members.items()}
    shown = {name: (mount.mountpoint / name).stat().st_mtime for name in [*folders, *members]}
    assert shown == folders | {name: mtime for name, (_, mtime) in members.items()}


# ---------------------------------------------------------------- excluded names


def test_excluded_files_left_in_place_stay_local(portal: PortalProcess, view: PortalView, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    local_only = {"~$doc.docx": b"\x05alice", ".doc.swp": b"b0VIM 9.0", ".~lock.doc.docx#": b"alice,host;"}
    with mounted(portal, tmp_path / "mnt", options=[UPLOAD_DELAY], cache_dir=cache) as mount:
        (mount.mountpoint / "doc.docx").write_bytes(b"PK\x03\x04 doc")
        for name, content in local_only.items():
            write_new(mount.mountpoint / name, content, fsync=True)
        wait_for_content(view, mount, "doc.docx", b"PK\x03\x04 doc")  # and nothing else is waiting to go
        assert view.names() == {"doc.docx"}
        assert listing(mount.mountpoint) == sorted({"doc.docx", *local_only})
    assert view.names() == {"doc.docx"}, "the unmount's drain sent excluded files"
    with mounted(portal, tmp_path / "mnt", options=[UPLOAD_DELAY], cache_dir=cache) as mount:
        for name, content in local_only.items():
            assert (mount.mountpoint / name).read_bytes() == content
        wait_until_quiet(mount)
        assert view.names() == {"doc.docx"}
    assert not view.deleted_names()
