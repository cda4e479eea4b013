"""WebDAV writes over the wire: ``PUT``, ``MKCOL``, ``DELETE``, ``COPY``, ``MOVE``,
``PROPPATCH``, and every refusal's status.

Each test gets a fresh portal.  Effects are checked through the other
protocols: the CTERA API (``fetchResources``, ``includeDeleted`` for the
recycle bin, ``fileId``) and ``GET`` downloads, so a reply that merely claims
success does not pass.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.portal.test_webdav import DAV, ROOT, dav_client, found, parse_multistatus, prop_request, propfind, url
from tests.support import portal_http as ph
from tests.support import raw_http
from tests.support.portal_process import PortalProcess, blob_names, running_portal, tmp_files
from tests.support.waiting import wait_for
from wire import ctera_xml
from wire.ctera_xml import obj

ODD_NAMES = ["a b & c #1 %.txt", "naïve café.txt", "日本語のファイル.txt", "100% +plus+ ;semi=1,@.txt", "Ωmega (copy) [2] {x}.bin"]


@pytest.fixture
def dav(portal: PortalProcess) -> Iterator[httpx.Client]:
    with dav_client(portal) as client:
        yield client


@pytest.fixture
def api(portal: PortalProcess) -> Iterator[httpx.Client]:
    """A CTERA API session of the same user: the second route to the server's state."""
    with ph.logged_in(portal) as client:
        yield client


def listing(api: httpx.Client, path: str, *, include_deleted: bool = False) -> dict[str, ctera_xml.Obj]:
    """``{name: ResourceInfo}`` of a folder's children as the CTERA API shows them."""
    param = obj("FetchResourcesParam", root=ph.href(path), depth="1", start="0", limit="1000", includeDeleted=include_deleted)
    answer = ctera_xml.as_obj(ph.call(api, "fetchResources", param))
    assert answer is not None
    return {ctera_xml.as_str(e.get("name")) or "": e for e in ctera_xml.iter_objs(answer.get("items"))}


def file_id(api: httpx.Client, path: str) -> int | None:
    info = ph.stat(api, path)
    assert info is not None, path
    return ctera_xml.as_int(info.get("fileId"))


def put(dav: httpx.Client, path: str, data: bytes, expect: int = 201, **headers: str) -> httpx.Response:
    reply = dav.put(url(path), content=data, headers=headers)
    assert reply.status_code == expect, reply.text
    return reply


def mkcol(dav: httpx.Client, path: str, expect: int = 201) -> None:
    reply = dav.request("MKCOL", url(path))
    assert reply.status_code == expect, reply.text


def relocate(
    dav: httpx.Client, verb: str, source: str, target: str, expect: int, *, absolute: bool = False, **headers: str
) -> httpx.Response:
    destination = url(target)
    if absolute:
        destination = f"{dav.base_url}".rstrip("/") + destination
    reply = dav.request(verb, url(source), headers={"destination": destination, **headers})
    assert reply.status_code == expect, reply.text
    return reply


# -------------------------------------------------------------------- PUT


def test_put_creates_then_versions_and_both_protocols_agree(dav: httpx.Client, api: httpx.Client) -> None:
    first = put(dav, "My Files/notes.txt", b"first", 201)
    put(dav, "My Files/other.txt", b"", 201)
    identity = file_id(api, "My Files/notes.txt")
    second = put(dav, "My Files/notes.txt", b"second version", 204)
    assert "content-length" not in second.headers, "no Content-Length on a 204 (RFC 9110)"
    assert first.headers["etag"] != second.headers["etag"]
    assert file_id(api, "My Files/notes.txt") == identity, "a new version keeps the fileId"
    got = dav.get(url("My Files/notes.txt"))
    assert got.content == b"second version" and got.headers["etag"] == second.headers["etag"]
    assert set(listing(api, "My Files")) == {"notes.txt", "other.txt"}
    props = parse_multistatus(propfind(dav, "My Files/notes.txt", "0"))[url("My Files/notes.txt")]
    assert found(props, "getetag").text == second.headers["etag"]
    assert found(props, "getcontentlength").text == str(len(b"second version"))
    assert dav.get(url("My Files/other.txt")).content == b""


def test_put_streams_a_large_chunked_body(dav: httpx.Client) -> None:
    rng = random.Random(4918)
    chunks = [rng.randbytes(1 << 20) for _ in range(24)]
    digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    reply = dav.put(url("My Files/big.bin"), content=iter(chunks))  # no Content-Length: chunked
    assert reply.status_code == 201, reply.text
    got = dav.get(url("My Files/big.bin"))
    assert len(got.content) == 24 << 20 and hashlib.sha256(got.content).hexdigest() == digest


def test_odd_names_round_trip_across_protocols(dav: httpx.Client, api: httpx.Client, portal: PortalProcess) -> None:
    mkcol(dav, "My Files/dir & #more%")
    for index, name in enumerate(ODD_NAMES):
        put(dav, f"My Files/dir & #more%/{name}", f"content {index}".encode())
    answer = parse_multistatus(propfind(dav, "My Files/dir & #more%"))
    assert sorted(answer) == sorted(
        [url("My Files/dir & #more%", folder=True), *(url(f"My Files/dir & #more%/{name}") for name in ODD_NAMES)]
    )
    assert set(listing(api, "My Files/dir & #more%")) == set(ODD_NAMES)
    for index, name in enumerate(ODD_NAMES):
        assert dav.get(url(f"My Files/dir & #more%/{name}")).content == f"content {index}".encode()
    # ... and a file uploaded with the CTERA API is a WebDAV resource like any other.
    ph.put(api, portal, "My Files/dir & #more%/via api é.txt", b"from the api")
    assert dav.get(url("My Files/dir & #more%/via api é.txt")).content == b"from the api"


def test_put_refusals(dav: httpx.Client, api: httpx.Client) -> None:
    put(dav, "My Files/file.txt", b"x")
    mkcol(dav, "My Files/folder")
    put(dav, "My Files/missing/new.txt", b"x", 409)
    put(dav, "My Files/file.txt/new.txt", b"x", 409)
    put(dav, "My Files/folder", b"x", 405)
    put(dav, "new-at-root.txt", b"x", 403)
    put(dav, "My Files/.snapshots/x.txt", b"x", 403)
    put(dav, "My Files/bad:name.txt", b"x", 400)
    put(dav, "My Files/trailing dot.", b"x", 400)
    put(dav, "My Files/CON.txt", b"x", 403)
    put(dav, "My Files/with\x01control", b"x", 400)
    assert dav.put(f"{ROOT}/My%20Files/a%2Fb.txt", content=b"x").status_code == 400
    assert dav.put(f"{ROOT}/My%20Files/%2E%2E", content=b"x").status_code == 400
    reply = dav.put(url("My Files/file.txt"), content=b"y", headers={"content-range": "bytes 0-0/1"})
    assert reply.status_code == 400
    assert set(listing(api, "My Files")) == {"file.txt", "folder"}
    assert dav.get(url("My Files/file.txt")).content == b"x"


def test_a_cut_put_leaves_nothing_behind(portal: PortalProcess, dav: httpx.Client) -> None:
    credentials = base64.b64encode(f"alice:{portal.users['alice']}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}"}
    data = raw_http.request_bytes("PUT", url("My Files/cut.bin"), headers, b"x" * 5000, content_length=1 << 20)
    with raw_http.connect(portal) as sock:
        sock.sendall(data)  # ... and hang up long before the promised megabyte
    deadline = time.monotonic() + 20
    while "PUT /ServicesPortal/webdav/My Files/cut.bin -> 400" not in portal.log():
        assert time.monotonic() < deadline, "the server never noticed the cut upload"
        time.sleep(0.05)
    assert not any((portal.data_dir / "tmp").iterdir()), "the partial upload was thrown away"
    assert propfind(dav, "My Files/cut.bin", "0").status_code == 404
    put(dav, "My Files/cut.bin", b"whole")


def test_put_conditions(dav: httpx.Client) -> None:
    etag = put(dav, "My Files/c.txt", b"1").headers["etag"]
    put(dav, "My Files/c.txt", b"2", 412, **{"if-none-match": "*"})
    put(dav, "My Files/c.txt", b"2", 412, **{"if-match": '"1-1"'})
    put(dav, "My Files/new.txt", b"2", 412, **{"if-match": "*"})
    put(dav, "My Files/c.txt", b"2", 204, **{"if-match": etag})
    put(dav, "My Files/d.txt", b"2", 201, **{"if-none-match": "*"})
    assert dav.get(url("My Files/c.txt")).content == b"2"


def test_put_conditions_hold_until_the_body_has_arrived(dav: httpx.Client, api: httpx.Client,
                                                       portal: PortalProcess) -> None:
    """A long body that began while the name was free does not replace a file created meanwhile,
    and what it had stored goes with the refusal."""
    before = blob_names(portal.data_dir)

    def body() -> Iterator[bytes]:
        yield b"slow " * 1000
        # The portal stages a body only once the conditions held at its start: the race is now real.
        wait_for(lambda: tmp_files(portal), 10, "the PUT's body to be staged")
        api_put = api.put(url("My Files/raced.txt"), content=b"the other writer")  # another client, meanwhile
        assert api_put.status_code == 201, api_put.text
        yield b"slow " * 1000

    reply = dav.put(url("My Files/raced.txt"), content=body(), headers={"if-none-match": "*"})
    assert reply.status_code == 412, reply.text
    assert dav.get(url("My Files/raced.txt")).content == b"the other writer"
    assert len(blob_names(portal.data_dir) - before) == 1, "the refused body's blob was left behind"  # only the other writer's


def test_quota_is_reported_and_enforced(tmp_path: Path) -> None:
    with running_portal(tmp_path / "data", "--quota", "10000") as portal, dav_client(portal) as dav:
        put(dav, "My Files/a.bin", b"a" * 6000)
        body = prop_request("quota-used-bytes", "quota-available-bytes")
        props = parse_multistatus(propfind(dav, "My Files", "0", body=body))[url("My Files", folder=True)]
        assert (found(props, "quota-used-bytes").text, found(props, "quota-available-bytes").text) == ("6000", "4000")
        for reply in (
            dav.put(url("My Files/b.bin"), content=b"b" * 5000),  # refused on Content-Length alone
            dav.put(url("My Files/b.bin"), content=iter([b"b" * 3000, b"b" * 2000])),  # chunked: refused mid-stream
        ):
            assert reply.status_code == 507, reply.text
            assert ET.fromstring(reply.content).find(f"{DAV}quota-not-exceeded") is not None
        put(dav, "My Files/a.bin", b"a" * 9000, 204)  # replacing counts only the growth
        relocate(dav, "COPY", "My Files/a.bin", "My Files/copy.bin", 507)
        listing_after = parse_multistatus(propfind(dav, "My Files"))
        assert sorted(listing_after) == [url("My Files", folder=True), url("My Files/a.bin")]


# ------------------------------------------------------------------ MKCOL


def test_mkcol(dav: httpx.Client, api: httpx.Client) -> None:
    mkcol(dav, "My Files/New folder é")
    mkcol(dav, "My Files/New folder é/inner")
    mkcol(dav, "My Files/New folder é", 405)
    mkcol(dav, "My Files", 405)
    mkcol(dav, "My Files/missing/inner", 409)
    mkcol(dav, "Top level", 403)
    mkcol(dav, "My Files/.snapshots/x", 403)
    mkcol(dav, "My Files/bad|name", 400)
    reply = dav.request("MKCOL", url("My Files/with body"), content=b"<x/>")
    assert reply.status_code == 415
    assert listing(api, "My Files").keys() == {"New folder é"}
    assert ctera_xml.as_bool(listing(api, "My Files")["New folder é"].get("isFolder"))
    assert set(listing(api, "My Files/New folder é")) == {"inner"}


# ----------------------------------------------------------------- DELETE


def test_delete_sends_to_the_recycle_bin(dav: httpx.Client, api: httpx.Client) -> None:
    mkcol(dav, "My Files/tree")
    put(dav, "My Files/tree/leaf.txt", b"leaf")
    put(dav, "My Files/lone.txt", b"lone")
    assert dav.delete(url("My Files/lone.txt")).status_code == 204
    assert dav.request("DELETE", url("My Files/tree"), headers={"depth": "0"}).status_code == 400
    assert dav.delete(url("My Files/tree")).status_code == 204
    assert propfind(dav, "My Files/tree", "0").status_code == 404
    assert listing(api, "My Files") == {}
    deleted = listing(api, "My Files", include_deleted=True)
    assert set(deleted) == {"tree", "lone.txt"}
    assert all(ctera_xml.as_bool(info.get("isDeleted")) for info in deleted.values())
    assert dav.delete(url("My Files/lone.txt")).status_code == 404
    assert dav.delete(url("My Files")).status_code == 403
    assert dav.delete(f"{ROOT}/").status_code == 403
    assert dav.delete(url("My Files/.snapshots")).status_code == 403
    etag = put(dav, "My Files/guarded.txt", b"g").headers["etag"]
    assert dav.request("DELETE", url("My Files/guarded.txt"), headers={"if-match": '"0-0"'}).status_code == 412
    assert dav.request("DELETE", url("My Files/guarded.txt"), headers={"if-match": etag}).status_code == 204


# ------------------------------------------------------------- MOVE, COPY


def test_move_renames_keeping_identity(dav: httpx.Client, api: httpx.Client) -> None:
    mkcol(dav, "My Files/dest")
    put(dav, "My Files/a.txt", b"a")
    identity = file_id(api, "My Files/a.txt")
    relocate(dav, "MOVE", "My Files/a.txt", "My Files/dest/b & c #1.txt", 201)
    relocate(dav, "MOVE", "My Files/dest/b & c #1.txt", "My Files/dest/B & C #1.txt", 201)  # case only
    assert set(listing(api, "My Files/dest")) == {"B & C #1.txt"}
    assert file_id(api, "My Files/dest/B & C #1.txt") == identity
    relocate(dav, "MOVE", "My Files/dest/B & C #1.txt", "My Files/c.txt", 201, absolute=True)
    assert dav.get(url("My Files/c.txt")).content == b"a"
    raw_utf8 = f"{ROOT}/My Files/dest/ünï & ß.txt".encode()  # unencoded, as some clients send it
    assert dav.request("MOVE", url("My Files/c.txt"), headers={"destination": raw_utf8}).status_code == 201
    assert set(listing(api, "My Files/dest")) == {"ünï & ß.txt"}
    assert file_id(api, "My Files/dest/ünï & ß.txt") == identity


def test_move_overwrite(dav: httpx.Client, api: httpx.Client) -> None:
    put(dav, "My Files/src.txt", b"src")
    put(dav, "My Files/dst.txt", b"dst")
    relocate(dav, "MOVE", "My Files/src.txt", "My Files/dst.txt", 412, overwrite="F")
    relocate(dav, "MOVE", "My Files/src.txt", "My Files/dst.txt", 204)  # Overwrite defaults to T
    assert dav.get(url("My Files/dst.txt")).content == b"src"
    assert set(listing(api, "My Files")) == {"dst.txt"}
    assert "dst.txt" in listing(api, "My Files", include_deleted=True), "the replaced file is recoverable"


def test_move_and_copy_refusals(dav: httpx.Client, portal: PortalProcess) -> None:
    mkcol(dav, "My Files/folder")
    mkcol(dav, "My Files/folder/sub")
    put(dav, "My Files/f.txt", b"f")
    for verb in ("MOVE", "COPY"):
        relocate(dav, verb, "My Files/folder", "My Files/folder/sub/inside", 403)
        relocate(dav, verb, "My Files/f.txt", "My Files/f.txt", 403)
        relocate(dav, verb, "My Files/f.txt", "My Files/missing/f.txt", 409)
        relocate(dav, verb, "My Files/f.txt", "My Files/f.txt/below", 409)
        relocate(dav, verb, "My Files/f.txt", "elsewhere.txt", 403)
        relocate(dav, verb, "My Files/f.txt", "My Files/bad?name", 400)
        relocate(dav, verb, "My Files/absent.txt", "My Files/x.txt", 404)
        assert dav.request(verb, f"{ROOT}/", headers={"destination": url("My Files/root")}).status_code == 403
        for destination in (
            f"https://elsewhere.example:{portal.port}{url('My Files/x.txt')}",
            f"https://{portal.host}:1{url('My Files/x.txt')}",
            f"http://{portal.host}:{portal.port}{url('My Files/x.txt')}",
            url("My Files/x.txt").replace("/ServicesPortal/", "/admin/"),
            "/ServicesPortal/api/x",
        ):
            reply = dav.request(verb, url("My Files/f.txt"), headers={"destination": destination})
            assert reply.status_code == 502, (verb, destination, reply.text)
    relocate(dav, "MOVE", "My Files", "My Files/folder/moved", 403)
    relocate(dav, "MOVE", "My Files/.snapshots", "My Files/snaps", 403)
    assert dav.request("MOVE", url("My Files/folder"), headers={"destination": url("My Files/x"), "depth": "0"}).status_code == 400
    assert sorted(parse_multistatus(propfind(dav, "My Files"))) == sorted(
        [url("My Files", folder=True), url("My Files/folder", folder=True), url("My Files/f.txt")]
    )


def test_copy_files_and_folders(dav: httpx.Client, api: httpx.Client) -> None:
    mkcol(dav, "My Files/src")
    mkcol(dav, "My Files/src/inner")
    put(dav, "My Files/src/inner/deep.txt", b"deep")
    put(dav, "My Files/src/top.txt", b"top")
    relocate(dav, "COPY", "My Files/src/top.txt", "My Files/top copy.txt", 201)
    assert file_id(api, "My Files/top copy.txt") != file_id(api, "My Files/src/top.txt")
    relocate(dav, "COPY", "My Files/src", "My Files/full", 201)
    assert dav.get(url("My Files/full/inner/deep.txt")).content == b"deep"
    relocate(dav, "COPY", "My Files/src", "My Files/shallow", 201, depth="0")
    assert listing(api, "My Files/shallow") == {}
    relocate(dav, "COPY", "My Files/src", "My Files/shallow", 412, overwrite="F")
    relocate(dav, "COPY", "My Files/src", "My Files/shallow", 204)
    assert set(listing(api, "My Files/shallow")) == {"inner", "top.txt"}, "Overwrite replaces, it does not merge"
    put(dav, "My Files/src/top.txt", b"changed", 204)
    assert dav.get(url("My Files/top copy.txt")).content == b"top", "a copy is independent of its source"


def test_copy_out_of_a_snapshot_restores_old_content(dav: httpx.Client, portal: PortalProcess) -> None:
    put(dav, "My Files/doc.txt", b"version 1")
    with httpx.Client(base_url=portal.url, verify=ph.tls_context(portal)) as hooks:
        assert hooks.post("/portalfs/test/snapshot").status_code == 200
    put(dav, "My Files/doc.txt", b"version 2", 204)
    listed = parse_multistatus(propfind(dav, "My Files/.snapshots"))
    snapshots = [href for href in listed if href != url("My Files/.snapshots", folder=True)]
    assert len(snapshots) == 1
    old = snapshots[0] + "doc.txt"
    assert dav.get(old).content == b"version 1"
    onto_live = {"destination": url("My Files/doc.txt")}
    assert dav.request("MOVE", old, headers=onto_live).status_code == 403, "snapshots are read-only"
    assert dav.delete(old).status_code == 403
    assert dav.request("COPY", old, headers={**onto_live, "overwrite": "F"}).status_code == 412
    assert dav.request("COPY", old, headers=onto_live).status_code == 204
    assert dav.get(url("My Files/doc.txt")).content == b"version 1"
    assert dav.request("COPY", snapshots[0], headers={"destination": url("My Files/restored")}).status_code == 201
    assert dav.get(url("My Files/restored/doc.txt")).content == b"version 1"


# ------------------------------------------------------- PROPPATCH, admin


def test_proppatch_refuses_every_property(dav: httpx.Client) -> None:
    put(dav, "My Files/p.txt", b"p")
    body = (
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:example:z">'
        "<D:set><D:prop><D:getlastmodified>Mon, 01 Jan 2024 00:00:00 GMT</D:getlastmodified>"
        "<Z:author>me</Z:author></D:prop></D:set><D:remove><D:prop><Z:colour/></D:prop></D:remove>"
        "</D:propertyupdate>"
    )
    reply = dav.request("PROPPATCH", url("My Files/p.txt"), content=body)
    props = parse_multistatus(reply)[url("My Files/p.txt")]
    assert {tag: status for tag, (status, _) in props.items()} == {
        f"{DAV}getlastmodified": 403,
        "{urn:example:z}author": 403,
        "{urn:example:z}colour": 403,
    }
    assert dav.request("PROPPATCH", url("My Files/p.txt"), content=b"<nope").status_code == 400
    assert dav.request("PROPPATCH", url("My Files/none.txt"), content=body).status_code == 404


def test_admin_writes_into_a_users_folder(portal: PortalProcess, dav: httpx.Client) -> None:
    admin_root = "/admin/webdav"
    with dav_client(portal, "root") as admin:
        reply = admin.put(url("Users/alice/My Files/from admin.txt", root=admin_root), content=b"hello alice")
        assert reply.status_code == 201, reply.text
        reply = admin.request(
            "COPY",
            url("Users/alice/My Files/from admin.txt", root=admin_root),
            headers={"destination": url("Users/bob/My Files/for bob.txt", root=admin_root)},
        )
        assert reply.status_code == 201, reply.text
        assert admin.put(url("Users/alice/x.txt", root=admin_root), content=b"x").status_code == 403
        assert admin.request("MKCOL", url("Users/carol", root=admin_root)).status_code == 403
    assert dav.get(url("My Files/from admin.txt")).content == b"hello alice"
    with dav_client(portal, "bob") as bob:
        assert bob.get(url("My Files/for bob.txt")).content == b"hello alice"
        assert propfind(bob, "My Files/from admin.txt", "0").status_code == 404, "bob does not see alice's files"
