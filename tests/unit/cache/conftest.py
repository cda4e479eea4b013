"""Fixtures of the block cache tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cache import CacheConfig


@pytest.fixture
def disk_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def small_config() -> CacheConfig:
    """4 KiB blocks, room for 64 in memory, no disk."""
    return CacheConfig(block_size=4096, memory_bytes=64 * 4096, max_readahead=16 * 4096,
                       fetch_size=4 * 4096, sequential_slack=0)
