"""Fixtures of the block cache tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def disk_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
