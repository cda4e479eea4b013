"""Names ⇄ hrefs: encoding per name, decoding that never lets a name change the path's shape."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vfs.backends.ctera.paths import InvalidHref, href_of, name_problem, names_of_href

SERVICES = "/ServicesPortal"

names = st.text(min_size=1, max_size=40).filter(lambda n: name_problem(n) is None)


@given(st.lists(names, max_size=6))
def test_href_round_trips(path: list[str]) -> None:
    href = href_of(SERVICES, tuple(path))
    assert href.startswith("/ServicesPortal/webdav")
    assert names_of_href(href, SERVICES) == tuple(path)
    assert names_of_href(href + "/", SERVICES) == tuple(path)  # folders may carry a trailing slash


def test_encoding_matches_the_vendor_sdk() -> None:
    assert href_of(SERVICES, ("My Files", "q1 & q2 résumé #1.txt")) == (
        "/ServicesPortal/webdav/My%20Files/q1%20%26%20q2%20r%C3%A9sum%C3%A9%20%231.txt"
    )
    assert href_of("/admin", ()) == "/admin/webdav"
    assert href_of(SERVICES, ("a+b", "100%")) == "/ServicesPortal/webdav/a%2Bb/100%25"


def test_decoding_splits_before_unquoting() -> None:
    assert names_of_href("/ServicesPortal/webdav/a%2Fb", SERVICES) == ("a/b",)
    assert names_of_href("/ServicesPortal/webdav/..%2F..%2Fetc", SERVICES) == ("../../etc",)
    assert names_of_href("/ServicesPortal/webdav/a+b", SERVICES) == ("a+b",)  # + is not a space


@pytest.mark.parametrize(
    "href",
    [
        "/admin/webdav/My%20Files",
        "/ServicesPortal/webdavX/a",
        "/ServicesPortal/webdav/a//b",
        "/ServicesPortal/webdav/%FF%FE",
        "https://evil.example/ServicesPortal/webdav/a",
    ],
)
def test_hrefs_outside_the_namespace_are_refused(href: str) -> None:
    with pytest.raises(InvalidHref):
        names_of_href(href, SERVICES)


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "nul\0", "x" * 256, "é" * 128, "\udcff"]
)
def test_names_a_local_filesystem_cannot_hold(name: str) -> None:
    assert name_problem(name) is not None


@pytest.mark.parametrize("name", ["a", "...", ".hidden", "x" * 255, "é" * 127, "a\\b", "CON", " lead"])
def test_names_that_are_fine_locally(name: str) -> None:
    assert name_problem(name) is None
