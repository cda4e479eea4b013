"""Which error a name the portal would refuse gets before a create (EINVAL or ENAMETOOLONG)."""

from __future__ import annotations

import pytest

from vfs.backends.base import InvalidName, NameTooLong
from vfs.backends.ctera.paths import MAX_NAME_BYTES, name_problem, storable_name_error


@pytest.mark.parametrize("name", ["a" * (MAX_NAME_BYTES + 1), "é" * 128, "x:" * 200])
def test_a_name_too_long_is_name_too_long(name: str) -> None:
    error = storable_name_error(name)
    assert type(error) is NameTooLong
    assert str(error) == name_problem(name)


@pytest.mark.parametrize("name", ["..", "a/b", "a\0b", "a:b", "trailing.", "trailing ", "CON.txt", "a\udcff"])
def test_other_refused_names_are_invalid(name: str) -> None:
    error = storable_name_error(name)
    assert type(error) is InvalidName and str(error)


@pytest.mark.parametrize("name", ["a" * MAX_NAME_BYTES, "é" * 127, "notes.txt", "über den Fluß"])
def test_storable_names_pass(name: str) -> None:
    assert storable_name_error(name) is None
