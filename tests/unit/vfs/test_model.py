"""A stateful property test: the filesystem against a model of the sample tree, driven like a kernel.

The model is what the portal says, asked with plain WebDAV (``PROPFIND``
for folder contents, whole-file ``GET`` for bytes), independently of
``vfs``.  Hypothesis plays the kernel: it looks names up, reads folders in
buffer-sized batches (taking some entries, leaving the rest), opens, reads
at random offsets, releases and forgets.  The machine keeps the kernel's
side of the bargain — the inodes it was given, how many references it holds
on each, its open handles — and checks after every step that:

* every inode the model holds is in the inode table, at the remote path
  and kind the model expects, with exactly the model's lookup count;
* a lookup or listing of an item the model still holds gives the same
  inode; an item given again after it was forgotten gets a number never
  handed out before;
* reads return the portal's bytes; ``keep_cache`` is true exactly on a
  re-open of an inode the kernel already read through;
* the filesystem holds no handle the model does not, and (after each
  run's teardown) no inode but the root: nothing leaks.

Driving an async filesystem from hypothesis' synchronous rules: the whole
run happens in a worker thread of the test's trio loop and every call goes
back to that loop with ``trio.from_thread`` (see :mod:`tests.unit.vfs.bridge`).
One loop, one login, one block cache for all examples; each run gets a
fresh ``Filesystem`` over them (a new mount), so runs are independent and a
failure replays and shrinks; each run's teardown gives back every reference
and handle and checks the table is left with the root alone.

The kernel's own rules are respected, because the filesystem may rely on
them: ``.`` / ``..`` only in folders, a folder is never forgotten while the
kernel still holds something below it (a dentry pins its parent), and
``.snapshots`` is looked up at the root only here (an item reached through
two ``.snapshots`` folders is one inode with two parents, which a model
keyed by path cannot follow; ``test_snapshots`` covers the other folders).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tests.support.portal_process import PortalProcess
from tests.unit.vfs import bridge
from tests.unit.vfs.graph import Mounted, open_filesystem
from tests.unit.vfs.test_snapshots import label_of
from tests.unit.vfs.truth import Child, download, propfind
from vfs.attributes import DirEntry, Entry
from vfs.filesystem import Filesystem
from vfs.inodes import ROOT_INODE

FsPath = tuple[str, ...]

#: Folders the machine never enters: thousands of entries, tens of megabytes (other tests cover them).
NOT_ENTERED = frozenset({"Many files", "Large files"})
#: Names no folder of the sample holds.
MISSING = ("Nothing.txt", "report.TXT.bak", "Old notes.txt")


@dataclass(frozen=True)
class Item:
    """One thing of the tree as the portal shows it, at its path as seen from the mount root."""

    fs_path: FsPath
    is_dir: bool
    size: int
    #: what ``InodeTable.remote_path`` must say for it
    remote: tuple[str, ...]

    @property
    def enterable(self) -> bool:
        return self.is_dir and not any(name in NOT_ENTERED for name in self.fs_path)


class SampleTree:
    """alice's sample tree, asked of the portal once per folder (the sample never changes)."""

    def __init__(self, portal: PortalProcess) -> None:
        self._portal = portal
        self._listings: dict[str, list[Child]] = {}
        self._bytes: dict[tuple[str, ...], bytes] = {}
        snapshots = sorted(child.name for child in propfind(portal, ".snapshots"))
        self.labels = {label_of(name): name for name in snapshots}
        self.root = Item((), True, 0, ("My Files",))

    def _portal_folder(self, item: Item) -> str:
        return "/".join(item.remote[1:])

    def children(self, item: Item) -> dict[str, Item]:
        """The folder's entries as a listing shows them (``.snapshots`` at the root only)."""
        assert item.is_dir
        if item.fs_path == (".snapshots",):
            return {label: Item((".snapshots", label), True, 0, ("My Files", ".snapshots", name))
                    for label, name in self.labels.items()}
        folder = self._portal_folder(item)
        if folder not in self._listings:
            self._listings[folder] = propfind(self._portal, folder)
        found = {child.name: Item((*item.fs_path, child.name), child.is_dir, child.size, (*item.remote, child.name))
                 for child in self._listings[folder]}
        if item.fs_path == ():
            found = {".snapshots": Item((".snapshots",), True, 0, ("My Files",)), **found}
        return found

    def content(self, item: Item) -> bytes:
        if item.remote not in self._bytes:
            self._bytes[item.remote] = download(self._portal, "/".join(item.remote[1:]))
        return self._bytes[item.remote]


@dataclass
class Known:
    """The kernel's side of one inode."""

    item: Item
    lookups: int = 0
    #: the kernel's page cache holds this inode's content (it was opened before)
    cached: bool = False


@dataclass
class Run:
    """What all hypothesis runs share: the logged-in backend and block cache of a mount, and the tree."""

    mounted: Mounted
    tree: SampleTree

    def new_filesystem(self) -> Filesystem:
        """A fresh ``Filesystem`` over the shared backend and cache: every run starts like a new mount,
        so a failure replays exactly (hypothesis shrinks it) instead of leaking into the next run."""
        fs = self.mounted.fs
        return Filesystem(fs.backend, fs.cache, fs.config, self.mounted.root_path, fs.inodes.root.entry)


class KernelModel(RuleBasedStateMachine):
    run: Run  # set on the subclass made for each test

    def __init__(self) -> None:
        super().__init__()
        self.fs = bridge.call_sync(self.run.new_filesystem)
        self.tree = self.run.tree
        self.numbers = {ROOT_INODE}  # every inode number handed out
        self.known: dict[int, Known] = {ROOT_INODE: Known(self.tree.root, lookups=1)}
        self.by_path: dict[FsPath, int] = {(): ROOT_INODE}
        self.handles: dict[int, int] = {}  # file handle → inode

    # ------------------------------------------------------------ helpers

    def _folders(self) -> list[int]:
        return sorted(inode for inode, known in self.known.items() if known.item.enterable)

    def _files(self) -> list[int]:
        return sorted(inode for inode, known in self.known.items() if not known.item.is_dir)

    def _given(self, item: Item, entry: Entry) -> int:
        """The kernel received ``entry`` for ``item``: check it and take one reference."""
        attributes = entry.attributes
        assert attributes is not None, item.fs_path
        assert entry.entry_timeout > 0 and entry.attr_timeout > 0
        assert attributes.is_dir == item.is_dir, item.fs_path
        if not item.is_dir:
            assert attributes.size == item.size, item.fs_path
        assert attributes.mode & 0o222 == 0 or item.remote[1:2] != (".snapshots",), item.fs_path
        inode = attributes.inode
        held = self.by_path.get(item.fs_path)
        if held is not None:
            assert inode == held, f"{item.fs_path}: inode {inode}, the kernel still holds it as {held}"
        else:
            assert inode not in self.numbers, f"{item.fs_path}: inode {inode} was handed out before"
            self.numbers.add(inode)
            self.by_path[item.fs_path] = inode
            self.known[inode] = Known(item)
        self.known[inode].lookups += 1
        return inode

    def _parent_of(self, inode: int) -> int:
        return self.by_path[self.known[inode].item.fs_path[:-1]]

    def _drop_if_unused(self, inode: int) -> None:
        known = self.known[inode]
        if inode != ROOT_INODE and known.lookups == 0 and inode not in self.handles.values():
            del self.known[inode]
            del self.by_path[known.item.fs_path]

    # -------------------------------------------------------------- rules

    @rule(data=st.data())
    def lookup(self, data: st.DataObject) -> None:
        parent = data.draw(st.sampled_from(self._folders()), label="folder")
        item = self.known[parent].item
        children = self.tree.children(item)
        name = data.draw(st.sampled_from(sorted(children) + [".", "..", *MISSING]), label="name")
        entry = bridge.call(self.fs.lookup, parent, name)
        if name == ".":
            assert entry.attributes is not None and entry.attributes.inode == parent
            self.known[parent].lookups += 1
        elif name == "..":
            up = parent if parent == ROOT_INODE else self._parent_of(parent)
            assert entry.attributes is not None and entry.attributes.inode == up
            self.known[up].lookups += 1
        elif name in children:
            self._given(children[name], entry)
        else:
            assert entry.attributes is None and entry.entry_timeout > 0, name

    @rule(data=st.data())
    def readdir(self, data: st.DataObject) -> None:
        """One pass over a folder the way the kernel does it: batches, some entries left untaken."""
        folder = data.draw(st.sampled_from(self._folders()), label="folder")
        children = self.tree.children(self.known[folder].item)
        handle = bridge.call(self.fs.opendir, folder)
        seen: list[str] = []
        offset = 0
        try:
            while True:
                batch = bridge.call_sync(lambda: list(self.fs.readdir(handle, offset)))
                if not batch:
                    break
                assert [entry.next_offset for entry in batch] == list(range(offset + 1, offset + len(batch) + 1))
                taken = data.draw(st.integers(1, len(batch)), label="taken")  # the buffer's capacity
                for entry in batch[:taken]:
                    self._deliver(children, entry)
                seen.extend(entry.name for entry in batch[:taken])
                offset = batch[taken - 1].next_offset
                if data.draw(st.booleans(), label="stop early"):  # ``ls | head``, or a seekdir elsewhere
                    break
        finally:
            bridge.call_sync(self.fs.releasedir, handle)
        assert len(seen) == len(set(seen)), seen
        if not batch:
            assert sorted(seen) == sorted(children), (self.known[folder].item.fs_path, seen)

    def _deliver(self, children: dict[str, Item], entry: DirEntry) -> None:
        assert entry.name in children, entry.name
        self._given(children[entry.name], entry.entry)
        bridge.call_sync(self.fs.delivered, entry)

    @precondition(lambda self: any(not known.item.is_dir for known in self.known.values()))
    @rule(data=st.data())
    def open(self, data: st.DataObject) -> None:
        inode = data.draw(st.sampled_from(self._files()), label="file")
        opened = bridge.call(self.fs.open, inode, os.O_RDONLY)
        known = self.known[inode]
        assert opened.keep_cache == known.cached, known.item.fs_path
        known.cached = True
        assert opened.handle not in self.handles
        self.handles[opened.handle] = inode

    @precondition(lambda self: bool(self.handles))
    @rule(data=st.data(), reads=st.integers(1, 4))
    def read(self, data: st.DataObject, reads: int) -> None:
        for _ in range(reads):
            handle = data.draw(st.sampled_from(sorted(self.handles)), label="handle")
            item = self.known[self.handles[handle]].item
            offset = data.draw(st.integers(0, item.size + 10), label="offset")
            length = data.draw(st.integers(0, 20_000), label="length")
            got = bridge.call(self.fs.read, handle, offset, length)
            assert got == self.tree.content(item)[offset:offset + length], (item.fs_path, offset, length)

    @precondition(lambda self: bool(self.handles))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        handle = data.draw(st.sampled_from(sorted(self.handles)), label="handle")
        inode = self.handles.pop(handle)
        bridge.call(self.fs.release, handle)
        self._drop_if_unused(inode)

    @precondition(lambda self: bool(self._forgettable()))
    @rule(data=st.data())
    def forget(self, data: st.DataObject) -> None:
        inode = data.draw(st.sampled_from(self._forgettable()), label="inode")
        known = self.known[inode]
        count = data.draw(st.integers(1, known.lookups), label="count")
        bridge.call_sync(self.fs.forget, [(inode, count)])
        known.lookups -= count
        self._drop_if_unused(inode)
        if inode not in self.known:
            assert bridge.call_sync(self.fs.inodes.get, inode) is None

    def _forgettable(self) -> list[int]:
        """Inodes the kernel could forget now: held, and with nothing held below them."""
        parents = {known.item.fs_path[:-1] for known in self.known.values() if known.item.fs_path}
        return sorted(inode for inode, known in self.known.items()
                      if inode != ROOT_INODE and known.lookups > 0 and known.item.fs_path not in parents)

    # --------------------------------------------------------- invariants

    @invariant()
    def the_table_agrees_with_the_kernel(self) -> None:
        def check() -> None:
            for inode, known in self.known.items():
                node = self.fs.inodes.get(inode)
                assert node is not None, f"{known.item.fs_path}: inode {inode} was dropped while held"
                if inode != ROOT_INODE:  # the root's count is the kernel's own business
                    assert node.lookups == known.lookups, (known.item.fs_path, node.lookups, known.lookups)
                assert node.is_dir == known.item.is_dir
                assert self.fs.inodes.remote_path(node) == known.item.remote, known.item.fs_path
            statistics = self.fs.statistics()
            assert statistics["handles"] == len(self.handles)
            assert statistics["inodes"] == len(self.known), "the table holds inodes the kernel does not"

        bridge.call_sync(check)

    def teardown(self) -> None:
        """Give everything back, as an unmount does; the table must end with the root alone."""
        for handle in list(self.handles):
            bridge.call(self.fs.release, handle)
        bridge.call_sync(self.fs.forget, [(inode, known.lookups) for inode, known in self.known.items()
                                          if inode != ROOT_INODE])
        assert bridge.call_sync(self.fs.statistics) == {"inodes": 1, "handles": 0}


#: Every step is real network traffic, so shrinking a failure can take minutes (hypothesis allows
#: itself five): off by default, so a failure is reported at once with its (at most 40-step)
#: trace; ``PORTALFS_SHRINK=1`` turns it on to minimise a failure while debugging.
PHASES = tuple(Phase) if os.environ.get("PORTALFS_SHRINK") else (Phase.explicit, Phase.reuse, Phase.generate)
SETTINGS = settings(max_examples=20, stateful_step_count=40, deadline=None, database=None, phases=PHASES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


async def test_the_filesystem_follows_the_model(sample_portal: PortalProcess, tmp_path: Path) -> None:
    async with open_filesystem(sample_portal, tmp_path / "cache") as mounted:
        def explore() -> None:
            run = Run(mounted, SampleTree(sample_portal))
            run_state_machine_as_test(type("SampleKernel", (KernelModel,), {"run": run}), settings=SETTINGS)

        await bridge.run_in_worker(explore)

