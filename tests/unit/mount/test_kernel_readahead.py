"""Raising a mount's kernel read-ahead: the sysfs knob it writes, and a quiet refusal."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from mount import readahead


def test_the_window_is_written_to_the_mounts_bdi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readahead, "BDI", tmp_path)
    device = os.makedev(0, 57)
    (tmp_path / "0:57").mkdir()
    assert readahead.set_kernel_read_ahead(device, 4 << 20)
    assert (tmp_path / "0:57" / "read_ahead_kb").read_text() == "4096\n"


def test_a_refusal_leaves_the_default_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(readahead, "BDI", tmp_path)  # no such device folder: like EACCES, nothing written
    with caplog.at_level(logging.INFO, logger="mount.readahead"):
        assert not readahead.set_kernel_read_ahead(os.makedev(0, 58), 1 << 20)
    assert "kernel's default" in caplog.text
