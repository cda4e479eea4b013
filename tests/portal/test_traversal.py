"""No spelling of a path leaves the caller's namespace; refused names get the spec's codes.

bob attacks alice's files through every entry point that takes a path
(download, ``fetchResources``, upload ``fullpath``, ``makeCollection``,
``moveResources``/``copyResources``/``deleteResources``, ZIP) with every
spelling that has ever fooled a server: ``..``, ``%2e%2e``, ``%2f`` inside a
name, backslashes, NUL, double encoding, over-long names, absolute URLs and
the admin context.  bob owns a file of the same name as alice's secret, so a
server that "normalises" a path back into bob's own files is allowed, but
alice's bytes, names or ids must never appear and her tree must not change.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.support import portal_http as ph
from tests.support import raw_http
from tests.support.portal_process import PortalProcess, running_portal
from wire import ctera_xml
from wire.ctera_xml import obj

ALICE_SECRET = b"alice's secret bytes 7f3a9c"
ALICE_DEEP = b"alice's deeper secret 51be02"
BOB_OWN = b"bob's own file"
ALICE_ONLY_NAME = "alice-only-plans.txt"

_TARGET = "Users/alice/My%20Files/secret.txt"
#: Spellings bob may try, as raw (already URL-encoded) paths below ``/ServicesPortal/webdav/``.
SPELLINGS = [
    f"My%20Files/../../../admin/webdav/{_TARGET}",
    f"My%20Files/%2e%2e/%2e%2e/%2e%2e/admin/webdav/{_TARGET}",
    f"My%20Files/%2E%2E/%2E%2E/%2E%2E/admin/webdav/{_TARGET}",
    f"..%2f..%2f..%2fadmin%2fwebdav%2f{_TARGET.replace('/', '%2f')}",
    "My%20Files%2f..%2f..%2f..%2fadmin%2fwebdav%2fUsers%2falice%2fMy%20Files%2fsecret.txt",
    f"My%20Files\\..\\..\\..\\admin\\webdav\\{_TARGET}".replace("/", "\\"),
    f"My%20Files%5c..%5c..%5c..%5cadmin%5cwebdav%5c{_TARGET.replace('/', '%5c')}",
    "My%20Files/secret.txt%00/../../../../admin/webdav/Users/alice/My%20Files/secret.txt",
    "My%20Files/%00/secret.txt",
    "My%20Files/secret.txt%00",
    f"My%20Files/%252e%252e/%252e%252e/%252e%252e/admin/webdav/{_TARGET}",
    f"My%20Files/%25252e%25252e/admin/webdav/{_TARGET}",
    f"My%20Files/./../../admin/webdav/{_TARGET}",
    f"My%20Files/.%2e/.%2e/.%2e/admin/webdav/{_TARGET}",
    _TARGET,
    "alice/My%20Files/secret.txt",
    "..",
    "%2e%2e",
    "My%20Files/" + "a" * 5000,
    "My%20Files/" + "../" * 500 + "secret.txt",
    "My%20Files/%C0%AE%C0%AE/secret.txt",
    "My%20Files/%E2%80%A5/secret.txt",  # two-dot leader: a name, not ".."
    "My%20Files/secret.txt/..",
    "My%20Files/secret.txt;/../../admin/webdav/" + _TARGET,
]


@dataclass
class World:
    portal: PortalProcess
    alice: httpx.Client
    bob: httpx.Client

    def alice_tree(self) -> dict[str, bytes | None]:
        """alice's whole tree as alice sees it (folders map to None)."""
        tree: dict[str, bytes | None] = {}

        def walk(path: str) -> None:
            for name in ph.list_names(self.alice, path):
                child = f"{path}/{name}"
                reply = self.alice.get(ph.webdav_url(child))
                tree[child] = reply.content if reply.status_code == 200 else None
                if reply.status_code != 200:
                    walk(child)

        walk("My Files")
        return tree


@contextmanager
def _populated(portal: PortalProcess) -> Iterator[World]:
    with ph.logged_in(portal, "alice") as alice, ph.logged_in(portal, "bob") as bob:
        ph.put(alice, portal, "My Files/secret.txt", ALICE_SECRET)
        assert ph.mkdir(alice, "My Files", "Private") == "Ok"
        ph.put(alice, portal, "My Files/Private/deep.txt", ALICE_DEEP)
        ph.put(alice, portal, f"My Files/Private/{ALICE_ONLY_NAME}", b"plans")
        ph.put(bob, portal, "My Files/secret.txt", BOB_OWN)
        yield World(portal, alice, bob)


@pytest.fixture
def world(portal: PortalProcess) -> Iterator[World]:
    """alice's secrets and bob's file, on a portal of this test's own."""
    with _populated(portal) as populated:
        yield populated


@pytest.fixture(scope="module")
def read_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The same, shared by the tests that only read (each still checks alice's tree is unchanged)."""
    with running_portal(tmp_path_factory.mktemp("traversal") / "data") as portal, _populated(portal) as populated:
        yield populated


def _no_alice_in(data: bytes) -> None:
    assert ALICE_SECRET not in data and ALICE_DEEP not in data
    assert ALICE_ONLY_NAME.encode() not in data and b"Private" not in data


def _bob_cookie(world: World) -> dict[str, str]:
    return {"Cookie": f"JSESSIONID={world.bob.cookies['JSESSIONID']}"}


# ------------------------------------------------------------------- download


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_download_spellings_never_reach_alice(read_world: World, spelling: str) -> None:
    before = read_world.alice_tree()
    for headers in (_bob_cookie(read_world), {"Authorization": "Basic Ym9iOmJvYi1zZWNyZXQ="}):  # bob:bob-secret
        for method in ("GET", "HEAD"):
            request = raw_http.request_bytes(method, "/ServicesPortal/webdav/" + spelling, headers)
            reply = raw_http.exchange(read_world.portal, request)
            _no_alice_in(reply.body)
            if reply.status == 200:
                assert method == "HEAD" or reply.body == BOB_OWN, (spelling, reply.body[:100])
            else:
                assert 400 <= reply.status < 500, (spelling, reply.status, reply.body[:200])
    assert read_world.alice_tree() == before


def test_bob_cannot_use_the_admin_context(read_world: World) -> None:
    for target in (f"/admin/webdav/{_TARGET}", "/admin/webdav/Users/alice", "/admin/webdav"):
        reply = raw_http.exchange(read_world.portal, raw_http.request_bytes("GET", target, _bob_cookie(read_world)))
        assert reply.status in (302, 401, 403), (target, reply.status)
        _no_alice_in(reply.body)
        basic = {"Authorization": "Basic Ym9iOmJvYi1zZWNyZXQ="}
        reply = raw_http.exchange(read_world.portal, raw_http.request_bytes("GET", target, basic))
        assert reply.status in (401, 403), (target, reply.status)
        _no_alice_in(reply.body)
    with ph.client(read_world.portal) as http:
        refused = http.post("/admin/api/login", data={"j_username": "bob", "j_password": read_world.portal.users["bob"]})
        assert refused.status_code == 403


def test_odd_request_targets(read_world: World) -> None:
    for target in (
        f"https://localhost/admin/webdav/{_TARGET}",
        f"//admin/webdav/{_TARGET}",
        f"/ServicesPortal//webdav/../../admin/webdav/{_TARGET}",
        f"/ServicesPortal/webdav/My%20Files/secret.txt?/../../admin/webdav/{_TARGET}",
        "/ServicesPortal/webdav/My%20Files/" + "x" * 60000,
    ):
        try:
            reply = raw_http.exchange(read_world.portal, raw_http.request_bytes("GET", target, _bob_cookie(read_world)))
        except OSError:  # ConnectionError or ssl.SSLEOFError
            continue  # the server may hang up on a request line it will not parse
        _no_alice_in(reply.body)
        assert reply.status != 200 or reply.body == BOB_OWN, (target, reply.status)
    ph.list_names(read_world.bob, "My Files")


# ------------------------------------------------------------- API parameters


def _hrefs() -> list[str]:
    """The spellings as hrefs in API parameters (plus the admin and absolute forms)."""
    return [f"/ServicesPortal/webdav/{s}" for s in SPELLINGS] + [
        f"/admin/webdav/{_TARGET}",
        f"https://localhost/admin/webdav/{_TARGET}",
        "/ServicesPortal/webdav/My Files/../../../admin/webdav/Users/alice/My Files/secret.txt",
        "/ServicesPortal/webdav/../../admin/webdav/Users/alice/My Files",
        "/ServicesPortal/webdavX/../admin/webdav/Users/alice/My%20Files",
        "/ServicesPortal/webdav/My Files\\..\\..\\..\\admin\\webdav\\Users\\alice\\My Files",
        "/ServicesPortal/webdav/My%20Files/\x00/../secret.txt",
    ]


def test_fetch_resources_never_lists_alice(read_world: World) -> None:
    for root in _hrefs():
        for depth in ("0", "1", "Infinity"):
            reply = ph.execute(read_world.bob, "fetchResources", obj("FetchResourcesParam", root=root, depth=depth))
            assert reply.status_code in (200, 400), (root, reply.status_code)
            _no_alice_in(reply.content)


def test_upload_fullpath_never_lands_outside_bob(world: World) -> None:
    before = world.alice_tree()
    bob_uid = _uid(world.bob)
    alice_uid = _uid(world.alice)
    for fullpath in _hrefs() + [f"{world.portal.url}{h}" for h in _hrefs()[:8]]:
        for uid in (bob_uid, alice_uid):
            body = _multipart({"name": "secret.txt", "Filename": "secret.txt", "fullpath": fullpath, "fileSize": "6"},
                              b"pwned!")
            reply = world.bob.post(f"/ServicesPortal/upload/folders/{uid}", content=body,
                                   headers={"content-type": "multipart/form-data; boundary=BB"})
            if reply.status_code == 200 and ph.error_of(reply)[0] == 0:
                # Accepted: then it may only have replaced bob's own file.
                assert world.bob.get(ph.webdav_url("My Files/secret.txt")).content == b"pwned!"
                ph.put(world.bob, world.portal, "My Files/secret.txt", BOB_OWN)
    assert world.alice_tree() == before


def test_bob_cannot_upload_into_alices_cloud_folder_by_uid(world: World) -> None:
    before = world.alice_tree()
    body = _multipart({"name": "x.txt", "Filename": "x.txt",
                       "fullpath": "/ServicesPortal/webdav/My%20Files/x.txt", "fileSize": "1"}, b"x")
    reply = world.bob.post(f"/ServicesPortal/upload/folders/{_uid(world.alice)}", content=body,
                           headers={"content-type": "multipart/form-data; boundary=BB"})
    assert reply.status_code == 200 and ph.error_of(reply)[0] != 0
    assert world.alice_tree() == before
    assert "x.txt" not in ph.list_names(world.bob, "My Files")


def test_make_collection_never_creates_outside_bob(world: World) -> None:
    before = world.alice_tree()
    for parent in _hrefs():
        reply = ph.execute(world.bob, "makeCollection", obj(None, name="planted", parentPath=parent))
        assert reply.status_code in (200, 400), (parent, reply.status_code)
        if reply.status_code == 200:
            assert ctera_xml.as_str(ctera_xml.decode(reply.content)) in (
                "DestinationNotExists", "PermissionDenied", "InvalidName"), parent
    for name in ("..", ".", "../planted", "..\\planted", "a/b", "My Files/../planted"):
        code = ph.mkdir(world.bob, "My Files", name)
        assert code == "InvalidName", (name, code)
    # A literal, double-encoded name is just a (strange) name inside bob's folder.
    assert ph.mkdir(world.bob, "My Files", "%2e%2e") == "Ok"
    assert "%2e%2e" in ph.list_names(world.bob, "My Files")
    assert world.alice_tree() == before


@pytest.mark.parametrize("task", ["moveResources", "copyResources"])
def test_move_and_copy_never_cross_into_or_out_of_alice(world: World, task: str) -> None:
    before = world.alice_tree()
    mine = "/ServicesPortal/webdav/My%20Files/secret.txt"
    for foreign in _hrefs():
        for src, dest in ((mine, foreign), (foreign, "/ServicesPortal/webdav/My%20Files/stolen.txt")):
            param = ph.resource_pairs((src, dest))
            reply = ph.execute(world.bob, task, param)
            if reply.status_code == 400:
                continue
            assert reply.status_code == 200, (src, dest, reply.text)
            status = ph.run_task(world.bob, task, param)
            _no_alice_in(ctera_xml.encode(status))
            if ctera_xml.as_str(status.get("status")) == "completed":
                assert dest != mine  # only ever moves bob's file around inside bob's folder
                _reset_bob(world)
    names = ph.list_names(world.bob, "My Files")
    assert "stolen.txt" not in names
    for name in names:
        reply = world.bob.get(ph.webdav_url(f"My Files/{name}"))
        _no_alice_in(reply.content)
    assert world.alice_tree() == before


def test_delete_never_reaches_alice(world: World) -> None:
    before = world.alice_tree()
    for foreign in _hrefs():
        param = ph.resource_pairs((foreign, None))
        if ph.execute(world.bob, "deleteResources", param).status_code == 200:
            ph.run_task(world.bob, "deleteResources", param)
            _reset_bob(world)
    assert world.alice_tree() == before


def test_zip_never_contains_alice(read_world: World) -> None:
    uid = _uid(read_world.bob)
    for path in _hrefs() + ["/ServicesPortal/webdav/My Files/../../admin/webdav/Users/alice/My Files"]:
        spec = obj(None, paths=[path], snapshot=None, password=None, portalName=None, showDeleted="false")
        reply = read_world.bob.post(f"/ServicesPortal/folders/folders/{uid}",
                               data={"inputXML": ctera_xml.encode_text(spec)})
        _no_alice_in(reply.content)
        if reply.status_code == 200:
            with zipfile.ZipFile(io.BytesIO(reply.content)) as archive:
                for info in archive.infolist():
                    _no_alice_in(info.filename.encode() + archive.read(info))
        else:
            assert 400 <= reply.status_code < 500, (path, reply.status_code)


# --------------------------------------------------------------- name rules

_INVALID = ["a<b", "a>b", "a:b", 'a"b', "a|b", "a?b", "a*b", "a\\b", "a/b", "dot.", "space ", "x" * 256,
            "\u00e9" * 128, "", ".", ".."]
_RESERVED = ["CON", "con", "Con.txt", "NUL", "nul.tar.gz", "PRN", "AUX", "COM1", "com9.log", "LPT1", "LPT9.txt"]


def test_make_collection_refuses_names_with_the_spec_codes(world: World) -> None:
    for name in _INVALID:
        assert ph.mkdir(world.bob, "My Files", name) == "InvalidName", name
    for name in _RESERVED:
        assert ph.mkdir(world.bob, "My Files", name) == "ReservedName", name
    for name in (".snapshots", ".SNAPSHOTS", ".Snapshots"):
        assert ph.mkdir(world.bob, "My Files", name) == "ReservedName", name
    # Edge cases that are fine.
    assert ph.mkdir(world.bob, "My Files", "sub") == "Ok"
    assert ph.mkdir(world.bob, "My Files/sub", ".snapshots") == "Ok"  # only the top is reserved
    for name in ("x" * 255, "\u00e9" * 127, "CONSOLE", "COM10", "a.b.c", " lead", ".hidden", "a..b", "%2e%2e"):
        assert ph.mkdir(world.bob, "My Files", name) == "Ok", name
    assert ph.mkdir(world.bob, "My Files", "SUB") == "FileWithTheSameNameExist"


def test_upload_refuses_the_same_names(world: World) -> None:
    import urllib.parse

    uid = _uid(world.bob)
    for name in [*_INVALID[:-3], *_RESERVED, "ctl\x01char", "nul\x00char", ".snapshots"]:
        fullpath = "/ServicesPortal/webdav/My%20Files/" + urllib.parse.quote(name, safe="")
        body = _multipart({"name": name.replace("\x00", ""), "Filename": "f", "fullpath": fullpath, "fileSize": "1"},
                          b"x")
        reply = world.bob.post(f"/ServicesPortal/upload/folders/{uid}", content=body,
                               headers={"content-type": "multipart/form-data; boundary=BB"})
        if reply.status_code == 200:
            rc, msg = ph.error_of(reply)
            assert rc != 0, (name, msg)
        else:
            assert 400 <= reply.status_code < 500, (name, reply.status_code)
    names = ph.list_names(world.bob, "My Files")
    assert names == ["secret.txt"], names


# ------------------------------------------------------------------ helpers


def _uid(http: httpx.Client) -> str:
    info = ph.stat(http, "My Files")
    assert info is not None
    folder = ctera_xml.as_obj(info.get("cloudFolderInfo"))
    assert folder is not None
    return str(ctera_xml.as_str(folder.get("uid")))


def _multipart(fields: dict[str, str], file: bytes) -> bytes:
    out = b""
    for name, value in fields.items():
        out += f'--BB\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
    out += b'--BB\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n' + file + b"\r\n--BB--\r\n"
    return out


def _reset_bob(world: World) -> None:
    """Put bob's folder back to just ``secret.txt`` after a task that was allowed."""
    for name in ph.list_names(world.bob, "My Files"):
        if name != "secret.txt":
            ph.run_task(world.bob, "deleteResources", ph.resource_pairs((ph.href(f"My Files/{name}"), None)))
    if "secret.txt" not in ph.list_names(world.bob, "My Files"):
        ph.put(world.bob, world.portal, "My Files/secret.txt", BOB_OWN)


def test_webdav_verbs_never_reach_alice(world: World) -> None:
    """PUT, MKCOL, DELETE, PROPFIND, COPY and MOVE (with hostile ``Destination``) as bob."""
    before = world.alice_tree()
    auth = {"Authorization": "Basic Ym9iOmJvYi1zZWNyZXQ="}  # bob:bob-secret
    mine = "/ServicesPortal/webdav/My%20Files/secret.txt"
    destinations = [f"/ServicesPortal/webdav/{s}" for s in SPELLINGS[:16]] + [
        f"/admin/webdav/{_TARGET}",
        f"{world.portal.url}/admin/webdav/{_TARGET}",
        f"https://elsewhere.example/ServicesPortal/webdav/{_TARGET}",
        "/ServicesPortal/webdav/My%20Files/%ff",
    ]
    for spelling in SPELLINGS[:16]:
        target = "/ServicesPortal/webdav/" + spelling
        for method, headers, body in (
            ("PUT", {}, b"pwned!"),
            ("MKCOL", {}, b""),
            ("DELETE", {}, b""),
            ("PROPFIND", {"Depth": "1"}, b""),
        ):
            reply = raw_http.exchange(world.portal, raw_http.request_bytes(method, target, {**auth, **headers}, body))
            _no_alice_in(reply.body)
            assert reply.status < 500, (method, spelling, reply.status, reply.body[:200])
    for destination in destinations:
        for method in ("COPY", "MOVE"):
            headers = {**auth, "Destination": destination, "Overwrite": "T"}
            reply = raw_http.exchange(world.portal, raw_http.request_bytes(method, mine, headers))
            _no_alice_in(reply.body)
            # 502 is RFC 4918's answer for a Destination in another URL namespace.
            assert reply.status < 500 or reply.status == 502, (method, destination, reply.status, reply.body[:200])
            if reply.status < 300:
                _reset_bob(world)
        for method in ("COPY", "MOVE"):  # and the other way round: alice's file as the source
            headers = {**auth, "Destination": "/ServicesPortal/webdav/My%20Files/stolen.txt"}
            source = destination if destination.startswith("/") else f"/admin/webdav/{_TARGET}"
            reply = raw_http.exchange(world.portal, raw_http.request_bytes(method, source, headers))
            _no_alice_in(reply.body)
            assert "stolen.txt" not in ph.list_names(world.bob, "My Files")
    for name in ph.list_names(world.bob, "My Files"):
        _no_alice_in(world.bob.get(ph.webdav_url(f"My Files/{name}")).content)
    assert world.alice_tree() == before
