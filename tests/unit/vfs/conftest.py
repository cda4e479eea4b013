"""Fixtures of the ``Filesystem`` tier: the real graph on a real reference portal, no kernel.

``sample`` is alice's sample ``My Files`` (read-only use: the sample portal
is shared by the whole session); ``view`` is a second client of the per-test
``portal``, independent of ``vfs``, for what the portal really holds.  Tests that change the portal, stop it or
need other settings build their own graph with
:func:`tests.unit.vfs.graph.open_filesystem` on the per-test ``portal``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.portal_process import PortalProcess
from tests.support.portal_view import PortalView, portal_view
from tests.unit.vfs.graph import Mounted, open_filesystem


@pytest.fixture
async def sample(sample_portal: PortalProcess, tmp_path: Path) -> AsyncIterator[Mounted]:
    async with open_filesystem(sample_portal, tmp_path / "cache") as mounted:
        yield mounted


@pytest.fixture
def view(portal: PortalProcess) -> Iterator[PortalView]:
    with portal_view(portal) as second_client:
        yield second_client
