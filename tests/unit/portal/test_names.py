"""Name rules, checked against an independent statement of them with hypothesis.

The oracle below restates docs/PROTOCOL-CHOICES.md's rules in the plainest
possible Python, without regular expressions; :func:`check_name` must agree
with it on arbitrary text (biased towards the characters the rules are about),
and every accepted name must work in a real store: created, found again by any
spelling with the same folding key, and refused as a duplicate by exactly those.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.store import Exists, InvalidName, ReservedName, Store
from portal.store.names import check_name, name_key
from tests.unit.portal.conftest import People, open_store

FORBIDDEN = set('\\/:*?"<>|') | {chr(code) for code in range(0x20)} | {"\x7f", "\ufffe", "\uffff"}
DEVICES = {"con", "prn", "aux", "nul"} | {f"{port}{n}" for port in ("com", "lpt") for n in "123456789"}


def expected(name: str, *, top: bool) -> str:
    """``"ok"``, ``"InvalidName"`` or ``"ReservedName"``, by the written rules."""
    if name in ("", ".", ".."):
        return "InvalidName"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name) or any(c in FORBIDDEN for c in name):
        return "InvalidName"
    if len(name.encode("utf-8")) > 255:
        return "InvalidName"
    if name.endswith((".", " ")):
        return "InvalidName"
    if name.split(".", 1)[0].lower() in DEVICES:
        return "ReservedName"
    if top and unicodedata.normalize("NFC", name).casefold() == ".snapshots":
        return "ReservedName"
    return "ok"


def verdict(name: str, *, top: bool) -> str:
    try:
        check_name(name, at_cloud_folder_top=top)
    except (InvalidName, ReservedName) as exc:
        return type(exc).__name__
    return "ok"


_interesting = st.sampled_from(list('\\/:*?"<>|. \x00\x01\x1f\x7f\ufffe\uffff\ud800\udfffcConNnUuLlPpTtMm1239.sSnapshotéÉ\u0301ß'))
_any_char = st.characters(exclude_categories=())  # includes surrogates and unassigned code points
names = st.one_of(
    st.text(alphabet=st.one_of(_interesting, _any_char), max_size=20),
    st.text(alphabet=_any_char, min_size=60, max_size=140),  # around the 255-byte limit with multibyte chars
    st.builds(lambda stem, ext: stem + ext,
              st.sampled_from(sorted(DEVICES | {d.upper() for d in DEVICES} | {"Con", "cOm1", "com0", "lpt10"})),
              st.sampled_from(["", ".txt", ".tar.gz", ".", " ", "x", ". x"])),
    st.builds(lambda prefix, body: prefix + body, st.sampled_from(["", "."]),
              st.sampled_from([".snapshots", ".SNAPSHOTS", "snapshots", ".snapshot", ".snapshots.", ".Snap\u017fhots"])),
)


@given(name=names, top=st.booleans())
@settings(max_examples=3000, deadline=None)
def test_check_name_follows_the_written_rules(name: str, top: bool) -> None:
    assert verdict(name, top=top) == expected(name, top=top)


@pytest.mark.parametrize(
    ("name", "outcome"),
    [("x" * 255, "ok"), ("x" * 256, "InvalidName"), ("\u00e9" * 127, "ok"), ("\u00e9" * 128, "InvalidName"),
     ("\U0001f600" * 63, "ok"), ("\U0001f600" * 64, "InvalidName"), ("CON", "ReservedName"),
     ("con.txt", "ReservedName"), ("CONSOLE", "ok"), ("COM0", "ok"), ("LPT10", "ok"), ("a.", "InvalidName"),
     ("a ", "InvalidName"), (" a", "ok"), (".a", "ok"), ("..a", "ok"), ("a\x00", "InvalidName"),
     ("\ud800", "InvalidName"), ("\ufffd", "ok")],
)
def test_boundaries(name: str, outcome: str) -> None:
    assert verdict(name, top=False) == outcome == expected(name, top=False)


def test_snapshots_is_reserved_only_at_the_top() -> None:
    assert verdict(".snapshots", top=True) == "ReservedName"
    assert verdict(".Snapshots", top=True) == "ReservedName"
    assert verdict(".snapshots", top=False) == "ok"


# ------------------------------------------------------------- in a real store


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = open_store(tmp_path_factory.mktemp("names") / "data")
    try:
        yield store
    finally:
        store.close()


_fresh = count()


@given(name=names.filter(lambda n: expected(n, top=False) == "ok"))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.filter_too_much])
def test_accepted_names_work_in_the_store(shared_store: Store, name: str) -> None:
    store = shared_store
    parent = store.make_folder(People(store).root("alice"), f"case-{next(_fresh)}")
    made = store.make_folder(parent, name)
    assert made.name == name  # stored exactly as given
    for spelling in {name, unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name),
                     name.upper(), name.lower(), name.swapcase()}:
        found = store.child(parent, spelling)
        same_key = name_key(spelling, case_sensitive=False) == name_key(name, case_sensitive=False)
        assert (found is not None and found.id == made.id) == same_key, spelling
        if same_key and expected(spelling, top=False) == "ok":
            with pytest.raises(Exists):
                store.make_folder(parent, spelling)
    assert [child.name for child in store.iter_children(parent)] == [name]


@given(name=names.filter(lambda n: expected(n, top=False) != "ok"))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_refused_names_never_reach_the_store(shared_store: Store, name: str) -> None:
    store = shared_store
    parent = store.make_folder(People(store).root("alice"), f"refused-{next(_fresh)}")
    error = InvalidName if expected(name, top=False) == "InvalidName" else ReservedName
    with pytest.raises(error):
        store.make_folder(parent, name)
    with pytest.raises(error):
        store.put_file(parent, name, store.blobs.write_small(b"x"), 1)
    file = store.put_file(parent, "ok.txt", store.blobs.write_small(b"x"), 1)
    with pytest.raises(error):
        store.move(file, parent, name)
    with pytest.raises(error):
        store.copy(file, parent, name)
    store.delete(file)
    with pytest.raises(error):
        store.restore(store.item(file.id), new_name=name)
    assert [child.name for child in store.iter_children(parent)] == []
