"""``-o`` options: the sizes and switches the daemon is given, and the errors a bad value gets."""

from __future__ import annotations

import pytest

from mount.options import OptionError, parse_options


def test_early_upload_takes_a_size_and_zero_turns_it_off() -> None:
    assert parse_options(["early_upload=32M"]).early_upload == 32 << 20
    assert parse_options(["early_upload=0"]).early_upload == 0
    assert parse_options([]).early_upload is None  # the daemon's default then
    with pytest.raises(OptionError, match="early_upload"):
        parse_options(["early_upload=lots"])
