"""The staging store against a ``bytearray`` model, over random operation sequences.

Each example stages one file over a random base (or a new empty file) and
applies writes, truncations, reads, commits and close-and-reopen cycles. After
every step the whole content must equal the model, the layout's bookkeeping
must agree with the data file on disk, and fetches must stay within what the
step may need. ``BlockMap`` gets its own comparison with a ``set``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from cache.blockmap import BlockMap
from cache.staging import StagingStore, open_staging_store

from .fakes import FakeSource, make_bytes

MAX_BLOCKS = 12


def check_invariants(store: StagingStore, record_id: int, model: bytearray, root: Path) -> None:
    record = store._records[record_id]
    layout = record.layout
    bs = layout.block_size
    assert layout.size == len(model) == store.get(record_id).size
    assert layout.base_limit <= layout.size
    top = layout.present.last()
    assert top is None or top * bs < layout.size  # nothing present past the end
    assert all(index not in layout.stale for index in layout.present)
    assert all(index * bs < layout.file_len for index in layout.present)
    on_disk = (root / "data" / str(record_id))
    assert layout.file_len == (on_disk.stat().st_size if on_disk.exists() else 0)
    assert layout.file_len >= layout.committed_len
    assert store.usage() == layout.charge() <= layout.file_len


writes = st.tuples(st.just("write"), st.floats(0, MAX_BLOCKS), st.floats(0.001, 3),
                   st.integers(0, 10_000))
ops = st.lists(st.one_of(
    writes, writes, writes,  # weighted: most steps change the file
    st.tuples(st.just("truncate"), st.floats(0, MAX_BLOCKS)),
    st.tuples(st.just("read"), st.floats(0, MAX_BLOCKS), st.floats(0, 4)),
    st.tuples(st.just("commit")),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("crash")),
), min_size=1, max_size=25)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(block_size=st.sampled_from([16, 100, 512]), base_blocks=st.floats(0, 10),
       truncate=st.booleans(), seed=st.integers(0, 1000), steps=ops)
# Always run the case where a crash finds committed blocks overwritten in place.
@example(block_size=16, base_blocks=2.0, truncate=False, seed=0,
         steps=[("write", 0.5, 0.5, 1), ("commit",), ("write", 0.0, 0.25, 2), ("crash",),
                ("write", 1.0, 1.0, 3), ("reopen",)])
async def test_random_operations_match_a_bytearray_model(
        block_size: int, base_blocks: float, truncate: bool, seed: int,
        steps: list[tuple]) -> None:  # type: ignore[type-arg]
    base = FakeSource(make_bytes(int(base_blocks * block_size), seed))
    model = bytearray() if truncate else bytearray(base.data)
    committed: bytes | None = None  # the content as of the last commit

    def at(blocks: float) -> int:
        return int(blocks * block_size)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "staging"
        store_cm = open_staging_store(root, block_size=block_size)
        store = await store_cm.__aenter__()
        try:
            staged = await store.create(("f",), base_size=len(base.data), truncate=truncate)
            record_id = staged.id
            for step in steps:
                calls_before = len(base.calls)
                kind = step[0]
                if kind == "write":
                    offset, length = at(step[1]), max(1, at(step[2]))
                    data = make_bytes(length, step[3])
                    assert await store.write(record_id, offset, data, base.fetch) == length
                    if offset > len(model):
                        model.extend(bytes(offset - len(model)))
                    model[offset:offset + length] = data
                    new_calls = base.calls[calls_before:]
                    # Only the partial blocks at the two edges are ever filled.
                    assert len(new_calls) <= 2
                    assert sum(n for _, n in new_calls) <= 2 * block_size
                elif kind == "truncate":
                    size = at(step[1])
                    await store.truncate(record_id, size, base.fetch)
                    del model[size:]
                    model.extend(bytes(size - len(model)))
                    assert len(base.calls) == calls_before
                elif kind == "read":
                    offset, length = at(step[1]), at(step[2])
                    got = await store.read(record_id, offset, length, base.fetch)
                    assert got == bytes(model[offset:offset + length])
                    assert sum(n for _, n in base.calls[calls_before:]) <= length
                elif kind in ("commit", "reopen"):
                    record = await store.commit(record_id)
                    committed = bytes(model)
                    assert record.state == "pending"
                    # After a commit the disk holds at most one copy of the file.
                    assert store.usage() <= len(model)
                if kind in ("reopen", "crash"):
                    # "crash": closed with uncommitted changes, as kill -9 leaves it
                    # (the page cache survives a killed process).
                    await store_cm.__aexit__(None, None, None)
                    store_cm = open_staging_store(root, block_size=block_size)
                    store = await store_cm.__aenter__()
                    if committed is None:
                        assert store.records() == []  # nothing was ever promised
                        return
                    assert [r.id for r in store.records()] == [record_id]
                    record = store.get(record_id)
                    event(f"{kind}: {record.state}")
                    got = await store.read(record_id, 0, len(committed) + 10, base.fetch)
                    assert record.size == len(committed) == len(got)
                    if record.state == "pending":
                        assert got == committed  # exactly the last commit
                    else:
                        # Committed blocks were being overwritten in place.
                        assert kind == "crash" and record.state == "held"
                        assert record.last_error is not None and "may mix" in record.last_error
                        await store.update(record_id, state="pending", last_error=None)
                    model, committed = bytearray(got), got  # what is on disk now
                check_invariants(store, record_id, model, root)
                assert await store.read(record_id, 0, len(model) + 10, base.fetch) == bytes(model)
            streamed = b"".join([part async for part in store.content(
                record_id, base.fetch, 3 * block_size + 1)])
            assert streamed == bytes(model)
        finally:
            await store_cm.__aexit__(None, None, None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000),
       writes=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 3)), min_size=1,
                       max_size=10, unique_by=lambda w: w[0]))
async def test_concurrent_writes_and_reads_of_one_file(
        seed: int, writes: list[tuple[int, int]]) -> None:
    # Disjoint writes commute, so the final content is known whatever the
    # interleaving; a slow base makes fills and reads overlap.
    bs = 64
    base = FakeSource(make_bytes(30 * bs, seed), delay=0.0005)
    model = bytearray(base.data)
    spans = sorted((start * 30 + 3, length * 7) for start, length in writes)
    with tempfile.TemporaryDirectory() as tmp:
        async with open_staging_store(Path(tmp) / "s", block_size=bs) as store:
            staged = await store.create(("f",), base_size=len(base.data))
            reads: list[bytes] = []

            async def write(offset: int, length: int) -> None:
                await store.write(staged.id, offset, bytes([offset % 251]) * length, base.fetch)

            async def read() -> None:
                reads.append(await store.read(staged.id, 0, 50 * bs, base.fetch))

            async with trio.open_nursery() as nursery:
                for offset, length in spans:
                    nursery.start_soon(write, offset, length)
                    nursery.start_soon(read)
            for offset, length in spans:
                if offset > len(model):
                    model.extend(bytes(offset - len(model)))
                model[offset:offset + length] = bytes([offset % 251]) * length
            assert await store.read(staged.id, 0, len(model) + 1, base.fetch) == bytes(model)
            # Every concurrent read saw each byte either before or after its write.
            for got in reads:
                for i, byte in enumerate(got):
                    assert byte in (model[i], base.data[i] if i < len(base.data) else 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "clear", "truncate"]),
                          st.integers(0, 300), st.integers(0, 300)), max_size=30),
       st.integers(0, 300), st.integers(0, 300))
def test_blockmap_matches_a_set(changes: list[tuple[str, int, int]], lo: int, hi: int) -> None:
    blocks, model = BlockMap(), set()
    for kind, a, b in changes:
        start, stop = min(a, b), max(a, b)
        if kind == "set":
            blocks.set_range(start, stop)
            model |= set(range(start, stop))
        elif kind == "clear":
            blocks.set_range(start, stop, False)
            model -= set(range(start, stop))
        else:
            blocks.truncate(a)
            model = {i for i in model if i < a}
        assert sorted(blocks) == sorted(model) and len(blocks) == len(model)
        assert blocks.last() == (max(model) if model else None)
    assert blocks.count_range(min(lo, hi), max(lo, hi)) == \
        len([i for i in model if min(lo, hi) <= i < max(lo, hi)])
    assert sorted(BlockMap.from_bytes(blocks.to_bytes())) == sorted(model)
    runs = list(blocks.runs(min(lo, hi), max(lo, hi)))
    assert [i for first, end, present in runs if present for i in range(first, end)] == \
        sorted(i for i in model if min(lo, hi) <= i < max(lo, hi))
    assert all(a[1] == b[0] and a[2] != b[2] for a, b in zip(runs, runs[1:]))
