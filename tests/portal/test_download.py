"""Downloads over ``GET {ctx}/webdav/<path>``: whole files, byte ranges, validators.

The FUSE client reads files block by block with ranged GETs and keys its cache
on the ETag, so a wrong byte at any offset, a wrong ``Content-Length`` or an
ETag that survives a new version would silently corrupt what users read.
Every check here compares bytes against a file of known random content that
the test uploaded itself.
"""

from __future__ import annotations

import email.utils
import random
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.support import portal_http as ph
from tests.support.portal_process import PortalProcess, running_portal

SIZE = 3 * (1 << 20) + 12345  # a few MiB, not a multiple of any chunk size
PATH = "My Files/Data/random.bin"
URL = ph.webdav_url(PATH)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PortalProcess, bytes]]:
    """A fresh portal holding ``PATH`` with known random content (read-only for tests)."""
    content = random.Random(20250310).randbytes(SIZE)
    with running_portal(tmp_path_factory.mktemp("download") / "data") as portal:
        with ph.logged_in(portal) as http:
            assert ph.mkdir(http, "My Files", "Data") == "Ok"
            ph.put(http, portal, PATH, content)
        yield portal, content


@pytest.fixture
def http(served: tuple[PortalProcess, bytes]) -> Iterator[httpx.Client]:
    with ph.logged_in(served[0]) as client:
        yield client


@pytest.fixture
def content(served: tuple[PortalProcess, bytes]) -> bytes:
    return served[1]


def _get_range(http: httpx.Client, spec: str, **headers: str) -> httpx.Response:
    # Header values go out as Latin-1 bytes, so hostile non-ASCII ranges reach the server as sent.
    return http.get(URL, headers={"range": spec.encode("latin-1"), **headers})


def _assert_partial(reply: httpx.Response, content: bytes, start: int, end: int) -> None:
    """A 206 carrying exactly ``content[start:end + 1]`` and headers that say so."""
    assert reply.status_code == 206, reply.text
    assert reply.headers["content-range"] == f"bytes {start}-{end}/{len(content)}"
    assert int(reply.headers["content-length"]) == end - start + 1
    assert reply.content == content[start : end + 1]


# ----------------------------------------------------------------- whole file


def test_whole_file_has_exact_bytes_and_validators(http: httpx.Client, content: bytes) -> None:
    reply = http.get(URL)
    assert reply.status_code == 200
    assert reply.content == content
    assert int(reply.headers["content-length"]) == len(content)
    assert reply.headers["accept-ranges"] == "bytes"
    etag = reply.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert email.utils.parsedate_to_datetime(reply.headers["last-modified"]) is not None
    assert "content-range" not in reply.headers


def test_head_has_the_get_headers_and_no_body(http: httpx.Client, content: bytes) -> None:
    got = http.get(URL)
    head = http.head(URL)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(content)
    for name in ("etag", "last-modified", "accept-ranges", "content-type"):
        assert head.headers[name] == got.headers[name]


def test_head_of_a_range_announces_the_range(http: httpx.Client, content: bytes) -> None:
    head = http.head(URL, headers={"range": "bytes=10-19"})
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes 10-19/{len(content)}"
    assert head.headers["content-length"] == "10"
    assert head.content == b""


def test_basic_auth_download_without_a_session(served: tuple[PortalProcess, bytes]) -> None:
    portal, content = served
    with ph.client(portal, auth=("alice", portal.users["alice"])) as http:
        whole = http.get(URL)
        assert whole.status_code == 200 and whole.content == content
        _assert_partial(_get_range(http, "bytes=100-199"), content, 100, 199)


# --------------------------------------------------------------------- ranges


def test_first_and_last_bytes(http: httpx.Client, content: bytes) -> None:
    last = len(content) - 1
    _assert_partial(_get_range(http, "bytes=0-0"), content, 0, 0)
    _assert_partial(_get_range(http, f"bytes={last}-{last}"), content, last, last)
    _assert_partial(_get_range(http, f"bytes=0-{last}"), content, 0, last)


def test_random_ranges_return_exactly_the_requested_bytes(http: httpx.Client, content: bytes) -> None:
    rng = random.Random(7)
    size = len(content)
    for _ in range(150):
        start = rng.randrange(size)
        length = rng.choice([1, 2, 4095, 4096, 4097, 65536, 1 << 20, rng.randrange(1, 3 << 20)])
        end = min(size - 1, start + length - 1)
        _assert_partial(_get_range(http, f"bytes={start}-{end}"), content, start, end)


def test_repeated_calls_at_the_same_and_arbitrary_offsets_agree(http: httpx.Client, content: bytes) -> None:
    rng = random.Random(11)
    offsets = [rng.randrange(len(content) - 4096) for _ in range(20)]
    for offset in offsets + offsets[::-1] + offsets:
        _assert_partial(_get_range(http, f"bytes={offset}-{offset + 4095}"), content, offset, offset + 4095)


def test_suffix_ranges(http: httpx.Client, content: bytes) -> None:
    size = len(content)
    for suffix in (1, 2, 1000, 1 << 20, size - 1, size):
        _assert_partial(_get_range(http, f"bytes=-{suffix}"), content, size - suffix, size - 1)
    # A suffix longer than the file is the whole file, still as a 206.
    _assert_partial(_get_range(http, f"bytes=-{size * 3}"), content, 0, size - 1)


def test_open_ranges(http: httpx.Client, content: bytes) -> None:
    size = len(content)
    for start in (0, 1, 12345, size - 4096, size - 1):
        _assert_partial(_get_range(http, f"bytes={start}-"), content, start, size - 1)


def test_ranges_running_past_the_end_are_clipped(http: httpx.Client, content: bytes) -> None:
    size = len(content)
    _assert_partial(_get_range(http, f"bytes={size - 10}-{size + 1000}"), content, size - 10, size - 1)
    _assert_partial(_get_range(http, f"bytes=0-{10**30}"), content, 0, size - 1)


@pytest.mark.parametrize("start_past_end", [0, 1, 10**6, 10**30])
def test_range_starting_past_the_end_is_416(http: httpx.Client, content: bytes, start_past_end: int) -> None:
    size = len(content)
    reply = _get_range(http, f"bytes={size + start_past_end}-")
    assert reply.status_code == 416
    assert reply.headers["content-range"] == f"bytes */{size}"
    rc, msg = ph.error_of(reply)
    assert rc != 0 and msg
    assert int(reply.headers["content-length"]) == len(reply.content)


def test_several_ranges_get_the_whole_file(http: httpx.Client, content: bytes) -> None:
    reply = _get_range(http, "bytes=0-9,20-29")
    assert reply.status_code == 200
    assert reply.content == content


def test_unknown_range_unit_is_ignored(http: httpx.Client, content: bytes) -> None:
    reply = _get_range(http, "items=0-9")
    assert reply.status_code == 200
    assert reply.content == content


@pytest.mark.parametrize(
    "spec",
    ["bytes=", "bytes=-", "bytes=abc", "bytes=5-2", "bytes=-0", "bytes=1-2-3", "bytes=--5", "bytes=0x10-",
     "bytes=\u00b2-", "bytes= -+5", "bytes=1e3-"],
)
def test_malformed_ranges_are_refused_and_the_server_keeps_serving(
    http: httpx.Client, content: bytes, spec: str
) -> None:
    reply = _get_range(http, spec)
    assert reply.status_code == 416, (spec, reply.status_code)
    assert reply.headers["content-range"] == f"bytes */{len(content)}"
    rc, msg = ph.error_of(reply)
    assert rc != 0 and msg
    _assert_partial(_get_range(http, "bytes=0-99"), content, 0, 99)


# ---------------------------------------------------------------- validators


def test_if_none_match_current_etag_is_304(http: httpx.Client, content: bytes) -> None:
    size = len(content)
    etag = http.head(URL).headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        reply = http.get(URL, headers={"if-none-match": header})
        assert reply.status_code == 304, header
        assert reply.content == b""
        assert reply.headers["etag"] == etag
        assert reply.headers.get("content-length", str(size)) == str(size)
    assert http.get(URL, headers={"if-none-match": '"something-else"'}).status_code == 200


def test_if_range_with_current_etag_honours_the_range(http: httpx.Client, content: bytes) -> None:
    etag = http.head(URL).headers["etag"]
    _assert_partial(_get_range(http, "bytes=5-9", **{"if-range": etag}), content, 5, 9)


def test_new_version_changes_etag_and_keeps_file_id(portal: PortalProcess) -> None:
    path, url = "My Files/versioned.bin", ph.webdav_url("My Files/versioned.bin")
    rng = random.Random(3)
    with ph.logged_in(portal) as http:
        seen_etags: list[str] = []
        file_ids: set[str] = set()
        versions = [rng.randbytes(rng.randrange(1, 2 << 20)) for _ in range(4)]
        versions.append(versions[0])  # identical bytes again: still a new version
        for data in versions:
            ph.put(http, portal, path, data)
            reply = http.get(url)
            assert reply.status_code == 200 and reply.content == data
            assert int(reply.headers["content-length"]) == len(data)
            assert reply.headers["last-modified"]
            seen_etags.append(reply.headers["etag"])
            info = ph.stat(http, path)
            assert info is not None
            file_ids.add(str(info.get("fileId")))
        assert len(set(seen_etags)) == len(versions), "every version needs its own ETag"
        assert len(file_ids) == 1, "a new version keeps the fileId"

        stale, current, data = seen_etags[-2], seen_etags[-1], versions[-1]
        # A client revalidating its stale copy gets the new content.
        reply = http.get(url, headers={"if-none-match": stale})
        assert reply.status_code == 200 and reply.content == data
        assert http.get(url, headers={"if-none-match": current}).status_code == 304
        # If-Range with the stale ETag: the whole new version, not a range of it.
        reply = http.get(url, headers={"range": "bytes=0-9", "if-range": stale})
        assert reply.status_code == 200
        assert reply.content == data
        assert "content-range" not in reply.headers
        assert int(reply.headers["content-length"]) == len(data)
        # If-Range with the current ETag: the range.
        reply = http.get(url, headers={"range": "bytes=0-9", "if-range": current})
        assert reply.status_code == 206 and reply.content == data[:10]


def test_empty_file(portal: PortalProcess) -> None:
    with ph.logged_in(portal) as http:
        ph.put(http, portal, "My Files/empty.txt", b"")
        url = ph.webdav_url("My Files/empty.txt")
        reply = http.get(url)
        assert reply.status_code == 200 and reply.content == b""
        assert reply.headers["content-length"] == "0"
        for spec in ("bytes=0-", "bytes=-1", "bytes=0-0"):
            refused = http.get(url, headers={"range": spec})
            assert refused.status_code == 416, spec
            assert refused.headers["content-range"] == "bytes */0"


# ----------------------------------------------------------------- not files


def test_missing_file_and_folder_downloads_are_refused(http: httpx.Client) -> None:
    missing = http.get(ph.webdav_url("My Files/Data/nope.bin"))
    assert missing.status_code == 404
    assert ph.error_of(missing)[1] == "Resource does not exist"
    folder = http.get(ph.webdav_url("My Files/Data"))
    assert folder.status_code in (404, 405)
    ph.error_of(folder)
    root = http.get("/ServicesPortal/webdav")
    assert root.status_code in (404, 405)


def test_encoded_and_raw_spellings_reach_the_same_file(portal: PortalProcess) -> None:
    name = "100% (%41) & résumé #1+2.txt"
    with ph.logged_in(portal) as http:
        ph.put(http, portal, f"My Files/{name}", b"spelled")
        for spelling in (
            ph.webdav_url(f"My Files/{name}"),
            "/ServicesPortal/webdav/My%20Files/100%25%20(%2541)%20&%20r%C3%A9sum%C3%A9%20%231+2.txt",
            "/ServicesPortal/webdav/My%20Files/100%25%20%28%2541%29%20%26%20r%C3%A9sum%C3%A9%20%231%2B2.txt",
        ):
            reply = http.get(spelling)
            assert reply.status_code == 200 and reply.content == b"spelled", spelling
        # ``+`` is a plus, never a space.
        assert http.get("/ServicesPortal/webdav/My%20Files/100%25%20(%2541)%20&%20r%C3%A9sum%C3%A9%20%231%202.txt").status_code == 404
        # Decoded once only: ``%2541`` is the three characters ``%41``, not ``A``.
        assert http.get("/ServicesPortal/webdav/My%20Files/100%25%20(A)%20&%20r%C3%A9sum%C3%A9%20%231+2.txt").status_code == 404


def test_parallel_ranged_reads_on_many_connections(served: tuple[PortalProcess, bytes]) -> None:
    """The FUSE client reads ahead on several connections at once."""
    portal, content = served
    failures: list[str] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        with ph.logged_in(portal) as http:
            for _ in range(25):
                start = rng.randrange(len(content))
                end = min(len(content) - 1, start + rng.randrange(1, 1 << 20))
                reply = _get_range(http, f"bytes={start}-{end}")
                if reply.status_code != 206 or reply.content != content[start : end + 1]:
                    failures.append(f"{seed}: bytes={start}-{end} -> {reply.status_code}")

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
