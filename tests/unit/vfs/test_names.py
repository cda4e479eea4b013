"""Names: lookups, negative entries, ``.``/``..``, and the kernel's lookup counts.

The kernel holds one reference per entry it received (a lookup reply, a
readdirplus entry it accepted) and returns them with ``forget``.  The inode
table must count exactly that: a count that is too low drops a node the
kernel still uses (ESTALE on a live file); too high leaks it forever.
"""

from __future__ import annotations

import errno
import os
import stat

import pytest

from tests.unit.vfs.graph import Mounted
from vfs.errors import VfsError
from vfs.inodes import ROOT_INODE


async def test_lookup_of_existing_names(sample: Mounted) -> None:
    documents = await sample.resolve("Documents")
    assert documents.attributes is not None and documents.attributes.is_dir
    assert documents.attributes.inode != ROOT_INODE
    assert documents.entry_timeout > 0 and documents.attr_timeout > 0
    report = await sample.resolve("Documents/Report.txt")
    assert report.attributes is not None
    assert stat.S_ISREG(report.attributes.mode)
    assert report.attributes.size > 0
    odd = await sample.resolve("Documents/q1 & q2 résumé #1.txt")
    assert odd.attributes is not None and not odd.attributes.is_dir


async def test_a_missing_name_is_a_negative_entry_the_kernel_may_cache(sample: Mounted) -> None:
    documents = await sample.inode("Documents")
    for name in ("No such file.txt", "Old notes.txt"):  # never existed; in the recycle bin
        entry = await sample.fs.lookup(documents, name)
        assert entry.attributes is None, name
        assert entry.entry_timeout > 0, name
    # a probe name costs nothing and is negative too
    assert (await sample.fs.lookup(documents, "desktop.ini")).attributes is None
    assert (await sample.fs.lookup(ROOT_INODE, "missing")).attributes is None


async def test_dot_and_dot_dot(sample: Mounted) -> None:
    design = await sample.inode("Projects/Apollo/Design")
    apollo = await sample.inode("Projects/Apollo")
    dot = await sample.fs.lookup(design, ".")
    dotdot = await sample.fs.lookup(design, "..")
    assert dot.attributes is not None and dot.attributes.inode == design
    assert dotdot.attributes is not None and dotdot.attributes.inode == apollo
    root = await sample.fs.lookup(ROOT_INODE, "..")
    assert root.attributes is not None and root.attributes.inode == ROOT_INODE


async def test_lookup_below_a_file_is_enotdir(sample: Mounted) -> None:
    report = await sample.inode("Documents/Report.txt")
    with pytest.raises(VfsError) as caught:
        await sample.fs.lookup(report, "child")
    assert caught.value.errno == errno.ENOTDIR


async def test_unknown_inode_is_estale(sample: Mounted) -> None:
    with pytest.raises(VfsError) as caught:
        await sample.fs.getattr(10**9)
    assert caught.value.errno == errno.ESTALE
    with pytest.raises(VfsError) as caught:
        await sample.fs.open(10**9, os.O_RDONLY)
    assert caught.value.errno == errno.ESTALE


async def test_missing_names_are_negative_with_or_without_a_listing(sample: Mounted) -> None:
    """The negative answer must not depend on whether the folder's listing happens to be cached."""
    documents = await sample.inode("Documents")
    before = (await sample.fs.lookup(documents, "Nope.txt")).attributes
    await sample.names(documents)  # now the listing answers
    after = (await sample.fs.lookup(documents, "Nope.txt")).attributes
    assert before is None and after is None


# ------------------------------------------------------------ lookup counts


def lookups(mounted: Mounted, inode: int) -> int | None:
    """The kernel reference count the table holds for ``inode`` (None: not in the table)."""
    node = mounted.fs.inodes.get(inode)
    return None if node is None else node.lookups


async def test_every_lookup_adds_one_reference(sample: Mounted) -> None:
    photos = await sample.inode("Photos")
    assert lookups(sample, photos) == 1
    assert await sample.inode("Photos") == photos
    assert (await sample.fs.lookup(photos, ".")).attributes is not None
    assert lookups(sample, photos) == 3
    image = await sample.inode("Photos/IMG_1000.png")
    assert lookups(sample, photos) == 4 and lookups(sample, image) == 1
    # ".." of a child is a reference to the parent too
    assert (await sample.fs.lookup(photos, "..")).attributes is not None
    assert lookups(sample, ROOT_INODE) == 2
    # a negative entry references nothing
    before = sample.fs.statistics()["inodes"]
    await sample.fs.lookup(photos, "missing.png")
    assert sample.fs.statistics()["inodes"] == before


async def test_readdir_entries_count_only_once_delivered(sample: Mounted) -> None:
    photos = await sample.inode("Photos")
    handle = await sample.fs.opendir(photos)
    try:
        entries = list(sample.fs.readdir(handle, 0))
        assert len(entries) == 12
        inodes = [entry.entry.attributes.inode for entry in entries if entry.entry.attributes]
        assert len(set(inodes)) == 12 and photos not in inodes
        assert all(lookups(sample, inode) in (None, 0) for inode in inodes)
        for entry in entries[:5]:
            sample.fs.delivered(entry)
        assert [lookups(sample, inode) for inode in inodes[:5]] == [1] * 5
        # the kernel asks again from offset 5 (its buffer was full): the same inodes, delivered now
        again = list(sample.fs.readdir(handle, 5))
        assert [e.entry.attributes.inode for e in again if e.entry.attributes] == inodes[5:]
        for entry in again:
            sample.fs.delivered(entry)
    finally:
        sample.fs.releasedir(handle)
    assert [lookups(sample, inode) for inode in inodes] == [1] * 12
    assert lookups(sample, photos) == 1  # listing a folder is no reference to it


async def test_an_undelivered_listing_leaves_no_nodes_behind(sample: Mounted) -> None:
    """``ls | head`` stops reading early: entries the kernel never took must not pile up."""
    many = await sample.inode("Many files")
    before = sample.fs.statistics()
    handle = await sample.fs.opendir(many)
    for count, _ in enumerate(sample.fs.readdir(handle, 0)):
        if count == 50:
            break
    sample.fs.releasedir(handle)
    await sample.listing(many)  # a whole listing nobody took
    assert sample.fs.statistics() == before


async def test_forget_to_zero_drops_the_node_and_numbers_are_never_reused(sample: Mounted) -> None:
    documents = await sample.inode("Documents")
    budget = await sample.inode("Documents/Budget.csv")
    assert await sample.inode("Documents/Budget.csv") == budget
    assert lookups(sample, budget) == 2
    sample.fs.forget([(budget, 1)])
    assert lookups(sample, budget) == 1
    sample.fs.forget([(budget, 1)])
    assert sample.fs.inodes.get(budget) is None
    with pytest.raises(VfsError) as caught:
        await sample.fs.getattr(budget)
    assert caught.value.errno == errno.ESTALE
    again = await sample.inode("Documents/Budget.csv")
    assert again != budget and again > budget
    # the folder the kernel still knows kept its number all along
    assert await sample.inode("Documents") == documents
    listed = await sample.inodes(documents)
    assert listed["Budget.csv"] == again
    # forgetting more than was given, or an unknown inode, or the root, is harmless (forget has no reply)
    sample.fs.forget([(again, 5), (10**9, 1), (ROOT_INODE, 100)])
    assert sample.fs.inodes.get(again) is None
    assert (await sample.fs.getattr(ROOT_INODE)).inode == ROOT_INODE


async def test_a_known_item_keeps_its_number_across_lookups_and_listings(sample: Mounted) -> None:
    design = await sample.inode("Projects/Apollo/Design")
    spec = await sample.inode("Projects/Apollo/Design/spec.md")
    for _ in range(3):
        listed = {e.name: e for e in await sample.listing(design, deliver=True)}
        assert listed["spec.md"].entry.attributes is not None
        assert listed["spec.md"].entry.attributes.inode == spec
        assert await sample.inode("Projects/Apollo/Design/spec.md") == spec
    assert lookups(sample, spec) == 1 + 3 + 3


async def test_a_node_with_an_open_handle_outlives_its_last_forget(sample: Mounted) -> None:
    """The kernel may forget an inode it still has open (an unlinked-but-open file)."""
    budget = await sample.inode("Documents/Budget.csv")
    opened = await sample.fs.open(budget, os.O_RDONLY)
    sample.fs.forget([(budget, 1)])
    assert sample.fs.inodes.get(budget) is not None
    assert (await sample.fs.read(opened.handle, 0, 5)) == b"month"
    await sample.fs.release(opened.handle)
    assert sample.fs.inodes.get(budget) is None
    assert sample.fs.statistics()["handles"] == 0
