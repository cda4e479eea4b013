"""Fixtures shared by every test tier.

``sample_portal`` (one per session, read-mostly: tests must not change the
sample tree) and ``portal`` (a fresh empty one per test, for tests that
change things) are real ``portalfs serve`` processes over HTTPS on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.portal_process import PortalProcess, running_portal


@pytest.fixture(scope="session")
def sample_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalProcess]:
    """A portal seeded with the sample tree and its history (do not modify it)."""
    with running_portal(tmp_path_factory.mktemp("sample") / "data", "--sample") as portal:
        yield portal


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[PortalProcess]:
    """A fresh portal with empty ``My Files`` for alice and bob, and admin ``root``."""
    with running_portal(tmp_path / "data") as server:
        yield server
