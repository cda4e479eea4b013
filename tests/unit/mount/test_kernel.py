"""Which kernels keep cached pages coherent with direct_io writes (mount/kernel.py)."""

from __future__ import annotations

import pytest

from mount.kernel import direct_writes_are_coherent


@pytest.mark.parametrize(("release", "coherent"), [
    ("6.6.0", True), ("6.18.44-fc-v657", True), ("7.0.1-arch1", True), ("10.1.0", True),
    ("6.5.13-generic", False), ("5.15.0-91-generic", False), ("4.19.0", False), ("", False), ("custom", False),
])
def test_releases_from_6_6_on_are_coherent(release: str, coherent: bool) -> None:
    assert direct_writes_are_coherent(release) == coherent

