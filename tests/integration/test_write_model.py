"""The mount against a plain local directory, over random sequences of changes.

A hypothesis state machine applies the same operation to a real portalfs
mount and to a local directory: create (``O_CREAT|O_TRUNC``) with random
content, write at a random offset (past the end too: sparse), append
(``O_APPEND``), truncate (shrink and grow, across the 1 MiB block size),
rename of files and folders (within and across folders, over existing files
and empty folders, into a folder itself), unlink, mkdir, rmdir, and, rarely,
a remount with the same cache directory — after a drained unmount, or after
``portalfs unmount --no-wait``, so that the next mount finds the uploads in
its journal.  The upload delay is short, so uploads are queued, running or
done while the sequence goes on; a step now and then waits until they are
done, so that later steps change files that are already on the portal.

After every step both trees must agree: names, types, sizes and bytes; an
operation that fails must fail on both sides with the same errno (ENOENT,
EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, EINVAL …).  When an example ends and its
uploads have settled, the portal itself (read by an independent client,
``PortalView``) must hold the same tree, except the files whose names match
the default exclude list (``vfs/exclusions.py``), which stay on this machine
by design; they are ignored on both sides (a portal file *renamed* to such a
name is moved on the portal, so its presence there is not a difference).

Names come from small alphabets with spaces, non-ASCII letters, dot-files and
excluded names (``x.tmp``, ``~$a``, ``.~lock.a#``), chosen so that no two
differ only in case or Unicode normalisation and none is refused by the
portal's Windows rules (``\\ / : * ? " < > |``, trailing dots or spaces,
DOS device names): those are documented differences from a local disk
(portal/store/names.py, docs/PROTOCOL-CHOICES.md #10), not something to
compare.  Paths are drawn either from the names that exist or from the whole
small universe, so both successes and errors are common.

One portal and one mount serve every example (mounting takes about a
second); each example works in a fresh folder of its own.
"""

from __future__ import annotations

import errno
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from tests.support.mount_process import MountProcess, mounted
from tests.support.portal_process import PortalProcess, running_portal
from tests.support.portal_view import local_tree, portal_view
from tests.support.portalfs_cli import wait_until_quiet
from vfs.exclusions import DEFAULT_EXCLUDES, Exclusions

pytestmark = pytest.mark.fuse

REPOSITORY = Path(__file__).resolve().parents[2]
UPLOAD_DELAY = 0.3
BLOCK = 1 << 20  # the cache's default block size: offsets around it cross a block boundary

DIR_NAMES = ("d", "e f", "Ωmega")
FILE_NAMES = ("f", "a b.txt", "ünï.bin", "日本", ".hidden", "x.tmp", "~$a", ".~lock.a#")
DIRS = tuple(itertools.chain(DIR_NAMES, (f"{a}/{b}" for a in DIR_NAMES for b in DIR_NAMES)))
FILES = tuple(f"{folder}/{name}" if folder else name for folder in ("", *DIRS) for name in FILE_NAMES)
EXCLUDED = Exclusions(DEFAULT_EXCLUDES)

contents = st.binary(max_size=300)
offsets = st.one_of(st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 5000),
                    st.sampled_from([BLOCK - 5, BLOCK + 3]))

Tree = dict[str, tuple[str, int, bytes | None]]  # relative path → (type, size, bytes)


def snapshot(root: Path) -> Tree:
    """Everything below ``root``: type, size (as stat says) and bytes (as read says) of each entry."""
    return {path: ("dir", 0, None) if data is None else ("file", (root / path).lstat().st_size, data)
            for path, data in local_tree(root).items()}


def uploaded_part(tree: Tree) -> dict[str, bytes | None]:
    """What the portal should hold of a tree: every folder, and every file not excluded by name."""
    return {path: content for path, (kind, _, content) in tree.items()
            if kind == "dir" or not EXCLUDED.matches(path.rsplit("/", 1)[-1])}


def create(path: Path, content: bytes) -> None:
    with open(path, "wb") as file:
        file.write(content)


def write_at(path: Path, offset: int, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, content, offset)
    finally:
        os.close(fd)


def append(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)


class RemountableMount:
    """One mount of alice's ``My Files``, taken down and brought back with the same cache directory."""

    def __init__(self, portal: PortalProcess, base: Path) -> None:
        self.portal = portal
        self.mountpoint = base / "mnt"
        self.cache_dir = base / "cache"
        self.process: MountProcess | None = None
        self._stack = ExitStack()

    def mount(self) -> None:
        self.process = self._stack.enter_context(mounted(
            self.portal, self.mountpoint, cache_dir=self.cache_dir, options=[f"upload_delay={UPLOAD_DELAY}"]))

    def unmount(self, *, drain: bool = True) -> None:
        """Unmount; the daemon drains its uploads first, or (``drain=False``) leaves them in its journal."""
        process = self.process
        assert process is not None
        if not drain:
            result = subprocess.run([sys.executable, "-m", "mount.cli", "unmount", "--no-wait", str(self.mountpoint)],
                                    capture_output=True, text=True, timeout=60, cwd=REPOSITORY, check=False)
            assert result.returncode == 0, result.stderr
        self.process = None
        self._stack.close()
        assert process.process.returncode == 0, f"the daemon did not stop cleanly:\n{process.log()[-5000:]}"

    def log(self) -> str:
        return self.process.log() if self.process is not None else ""

    def settle(self) -> None:
        """Wait until the daemon says no upload is waiting or running (excluded files stay, by design).

        Only pacing, so that later steps also change files already on the portal; what the
        portal holds is checked through ``PortalView``, never through the daemon's word."""
        wait_until_quiet(self)


@pytest.fixture(scope="module")
def model_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalProcess]:
    with running_portal(tmp_path_factory.mktemp("write-model-portal") / "data") as portal:
        yield portal


@pytest.fixture(scope="module")
def model_mount(model_portal: PortalProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemountableMount]:
    mount = RemountableMount(model_portal, tmp_path_factory.mktemp("write-model-mount"))
    mount.mount()
    try:
        yield mount
    finally:
        if mount.process is not None:
            mount.unmount()


class MountAgainstLocalDirectory(RuleBasedStateMachine):
    """Set ``mount`` and ``local_base`` in a subclass (see the test below)."""

    mount: RemountableMount
    local_base: Path
    numbers = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        if self.mount.process is None:  # a previous example failed while unmounted
            self.mount.mount()
        self.folder = f"example {next(self.numbers)}"
        self.local = self.local_base / self.folder
        self.local.mkdir()
        self.remote.mkdir()

    @property
    def remote(self) -> Path:
        return self.mount.mountpoint / self.folder

    @initialize(data=st.data(), folders=st.lists(st.sampled_from(DIR_NAMES), max_size=3, unique=True),
                files=st.lists(contents, min_size=1, max_size=5), upload_first=st.booleans())
    def start_with_some_files(self, data: st.DataObject, folders: list[str], files: list[bytes],
                              upload_first: bool) -> None:
        """A few folders and files to work on, pending or (``upload_first``) already on the portal."""
        for folder in folders:
            self.both(os.mkdir, folder)
        for content in files:
            folder = data.draw(st.sampled_from(["", *folders]))
            name = data.draw(st.sampled_from(FILE_NAMES))
            self.both(create, f"{folder}/{name}" if folder else name, args=(content,))
        if upload_first:
            self.mount.settle()

    # ------------------------------------------------------------ applying and comparing

    def both(self, operation: Callable[..., None], *paths: str, args: tuple[object, ...] = ()) -> None:
        """Apply ``operation`` locally, then through the mount: same success, or same errno."""
        outcomes = []
        for root in (self.local, self.remote):
            try:
                operation(*(root / path for path in paths), *args)
                outcomes.append("ok")
            except OSError as exc:
                outcomes.append(errno.errorcode.get(exc.errno or 0, str(exc.errno)))
        local, through_mount = outcomes
        assert through_mount == local, (
            f"{operation.__name__}{paths}: {local} on a local disk, {through_mount} through the mount\n"
            f"{self.mount.log()[-4000:]}")

    def existing(self, kind: str) -> list[str]:
        return sorted(path for path, (found, _, _) in snapshot(self.local).items() if found == kind)

    def a_path(self, data: st.DataObject, kind: str, names: tuple[str, ...], universe: tuple[str, ...]) -> str:
        """Mostly an existing ``kind``, else a new name in an existing folder, rarely anything at all."""
        existing = self.existing(kind)
        choice = data.draw(st.integers(0, 7))
        if choice <= 4 and existing:
            return data.draw(st.sampled_from(existing))
        if choice <= 6:
            folder = data.draw(st.sampled_from(["", *self.existing("dir")]))
            name = data.draw(st.sampled_from(names))
            return f"{folder}/{name}" if folder else name
        return data.draw(st.sampled_from(universe))

    def a_file(self, data: st.DataObject) -> str:
        return self.a_path(data, "file", FILE_NAMES, FILES)

    def a_folder(self, data: st.DataObject) -> str:
        return self.a_path(data, "dir", DIR_NAMES, DIRS)

    @invariant()
    def trees_agree(self) -> None:
        assert snapshot(self.remote) == snapshot(self.local)

    # ------------------------------------------------------------ content

    @rule(data=st.data(), content=contents)
    def create_file(self, data: st.DataObject, content: bytes) -> None:
        self.both(create, self.a_file(data), args=(content,))

    @rule(data=st.data(), offset=offsets, content=contents)
    def write_somewhere(self, data: st.DataObject, offset: int, content: bytes) -> None:
        self.both(write_at, self.a_file(data), args=(offset, content))

    @rule(data=st.data(), content=contents)
    def append_to_file(self, data: st.DataObject, content: bytes) -> None:
        self.both(append, self.a_file(data), args=(content,))

    @rule(data=st.data(), size=offsets)
    def truncate(self, data: st.DataObject, size: int) -> None:
        self.both(os.truncate, self.a_file(data), args=(size,))

    # ------------------------------------------------------------ names

    @rule(data=st.data())
    def rename_file(self, data: st.DataObject) -> None:
        source = self.a_file(data)
        target = self.a_folder(data) if data.draw(st.integers(0, 7)) == 7 else self.a_file(data)
        self.both(os.rename, source, target)

    @rule(data=st.data())
    def unlink(self, data: st.DataObject) -> None:
        self.both(os.unlink, self.a_file(data))

    @rule(data=st.data())
    def mkdir(self, data: st.DataObject) -> None:
        self.both(os.mkdir, self.a_folder(data))

    @rule(data=st.data())
    def rmdir(self, data: st.DataObject) -> None:
        self.both(os.rmdir, self.a_folder(data))

    @rule(data=st.data())
    def rename_folder(self, data: st.DataObject) -> None:
        source = self.a_folder(data)
        target = self.a_file(data) if data.draw(st.integers(0, 7)) == 7 else self.a_folder(data)
        self.both(os.rename, source, target)

    @rule()
    def let_uploads_finish(self) -> None:
        """So that later steps change portal files, not only files still waiting to be uploaded."""
        self.mount.settle()

    # ------------------------------------------------------------ remount

    @rule(chance=st.integers(0, 5), drain=st.booleans())
    def remount(self, chance: int, drain: bool) -> None:
        if chance != 5:  # a remount takes a second or two: about one step in fifty
            return
        before = snapshot(self.remote)
        self.mount.unmount(drain=drain)
        self.mount.mount()
        assert snapshot(self.remote) == before, "the tree changed across a remount"

    # ------------------------------------------------------------ the portal's side

    def teardown(self) -> None:
        if self.mount.process is None:
            return
        expected = {f"{self.folder}/{path}": content for path, content in uploaded_part(snapshot(self.local)).items()}

        def on_the_portal() -> dict[str, bytes | None]:
            return {path: content for path, content in view.tree(self.folder).items()
                    if content is None or not EXCLUDED.matches(path.rsplit("/", 1)[-1])}

        with portal_view(self.mount.portal) as view:
            try:
                view.wait_for(lambda: on_the_portal() == expected, timeout=30, what=f"{self.folder} on the portal")
            except AssertionError:
                assert on_the_portal() == expected, f"the portal differs\n{self.mount.log()[-4000:]}"


#: Shrinking a failure of this test replays whole sequences against the mount for many
#: minutes, and timing (which uploads finished when) makes the replays differ; so a
#: failure is reported as found, with the mount's log.  PORTALFS_SHRINK=1 shrinks it;
#: PORTALFS_EXAMPLES=N runs N examples instead of 15 (a longer hunt).
PHASES = list(Phase) if os.environ.get("PORTALFS_SHRINK") else [Phase.explicit, Phase.reuse, Phase.generate]


def test_the_mount_behaves_like_a_local_directory(model_mount: RemountableMount, tmp_path: Path) -> None:
    machine = type("MountModel", (MountAgainstLocalDirectory,), {"mount": model_mount, "local_base": tmp_path})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=int(os.environ.get("PORTALFS_EXAMPLES", "15")), stateful_step_count=25, deadline=None,
        phases=PHASES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]))
