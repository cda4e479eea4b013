"""Hostile and broken requests get a clear refusal, and the portal keeps serving.

A refusal is a status plus the portal's ``{rc, msg}`` object (spec §3.4) so
that every client, including the vendor SDK, can show the reason; an upload
refused in-band answers ``rc`` ≠ 0 (spec §4.6).  After every bad request a
good one must still work: nothing a client sends may wedge or crash the
server, and nothing half-received may become visible.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import portal_http as ph
from tests.support import raw_http
from tests.support.portal_process import PortalProcess, running_portal, tmp_files, wait_for_no_tmp_files
from wire import ctera_xml
from wire.ctera_xml import obj

API = "/ServicesPortal/api"


@pytest.fixture
def alice(portal: PortalProcess) -> Iterator[httpx.Client]:
    with ph.logged_in(portal) as http:
        yield http


@pytest.fixture(scope="module")
def shared_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalProcess]:
    """One portal for the many refusals that must change nothing (each test checks that)."""
    with running_portal(tmp_path_factory.mktemp("bad-input") / "data") as portal:
        yield portal


@pytest.fixture
def shared_alice(shared_portal: PortalProcess) -> Iterator[httpx.Client]:
    with ph.logged_in(shared_portal) as http:
        yield http


def assert_refused(reply: httpx.Response | raw_http.RawReply, *statuses: int) -> str:
    """A non-2xx reply with the ``{rc, msg}`` body; returns ``msg``."""
    status = reply.status_code if isinstance(reply, httpx.Response) else reply.status
    body = reply.content if isinstance(reply, httpx.Response) else reply.body
    assert status in statuses, (status, body[:300])
    answer = ctera_xml.as_obj(ctera_xml.decode(body))
    assert answer is not None
    assert ctera_xml.as_int(answer.get("rc")) not in (None, 0), body
    msg = ctera_xml.as_str(answer.get("msg"))
    assert msg, body
    return msg


def assert_serving(portal: PortalProcess) -> None:
    """A fresh login and listing still work."""
    with ph.logged_in(portal, "bob") as http:
        assert ph.list_names(http, "") == ["My Files"]


# ---------------------------------------------------------------------- login


def test_wrong_credentials_are_403_with_a_reason(portal: PortalProcess) -> None:
    with ph.client(portal) as http:
        for form in (
            {"j_username": "alice", "j_password": "wrong"},
            {"j_username": "alice", "j_password": portal.users["bob"]},
            {"j_username": "nobody", "j_password": "x"},
            {"j_username": "alice", "j_password": ""},
            {"j_username": "", "j_password": ""},
            {},
            {"j_username": "root", "j_password": portal.admins["root"]},  # an admin, in the end-user context
        ):
            reply = http.post(f"{API}/login", data=form)
            assert_refused(reply, 403)
            assert "set-cookie" not in reply.headers
        assert_refused(http.post("/admin/api/login", data={"j_username": "alice", "j_password": portal.users["alice"]}), 403)
        assert_refused(http.post(f"{API}/login", content=b"j_username=alice&j_password=" + b"x" * (1 << 20)), 413)
        assert_refused(http.post(f"{API}/login", content=b"\xff\xfe\x00garbage"), 403)
    assert_serving(portal)


def test_a_forged_or_stale_cookie_is_not_a_session(portal: PortalProcess) -> None:
    with ph.client(portal) as http:
        for cookie in ("JSESSIONID=forged", 'JSESSIONID="', "JSESSIONID=" + "A" * 5000, "garbage;;;="):
            reply = http.get(ph.webdav_url("My Files"), headers={"cookie": cookie})
            assert reply.status_code in (302, 401)
        reply = http.post(API, headers={"cookie": "JSESSIONID=forged"}, content=b"<obj/>")
        assert reply.status_code == 302 and reply.headers["location"] == "/ServicesPortal/login.html"
    with ph.client(portal) as http:
        for auth in ("Basic !!!", "Basic " + "YWxpY2U=", "Bearer x", "Basic YWxpY2U6d3Jvbmc="):
            assert http.get(ph.webdav_url("My Files"), headers={"authorization": auth}).status_code == 401
    assert_serving(portal)


def test_malformed_url_encoding_is_a_400_with_a_reason(portal: PortalProcess, alice: httpx.Client) -> None:
    cookie = f"JSESSIONID={alice.cookies['JSESSIONID']}"
    for target in ("/ServicesPortal/webdav/My%20Files/%ff", "/ServicesPortal/webdav/%C0%AE%C0%AE/x",
                   "/ServicesPortal/webdav/My%20Files/%ED%A0%80"):
        reply = raw_http.exchange(portal, raw_http.request_bytes("GET", target, {"Cookie": cookie}))
        assert_refused(reply, 400)
    assert_serving(portal)


# -------------------------------------------------------------------- execute


@pytest.mark.parametrize(
    "body",
    [
        b"not xml at all",
        b"<obj",
        b"<obj><att id='type'><val>user-defined</val></att>",
        b"<obj><att><val>x</val></att></obj>",
        b"<obj><att id='a'><val>1</val><val>2</val></att></obj>",
        b"<obj><foo/></obj>",
        b"<val>fetchResources</val>",
        b"<list><val>1</val></list>",
        b"\xff\xfe<\x00o\x00b\x00j\x00",
        b"<?xml version='1.0' encoding='latin-1'?><obj><att id='name'><val>\xe9</val></att></obj>",
        b"<obj>" * 100 + b"</obj>" * 100,
        b"<obj><att id='type'><val>user-defined</val></att><att id='name'><val>fetchResources</val></att>"
        b"<att id='param'>" + b"<list>" * 50 + b"</list>" * 50 + b"</att></obj>",
    ],
    ids=["text", "unclosed", "truncated", "att-without-id", "two-values", "foreign-element", "scalar", "list",
         "utf16-garbage", "declared-latin1", "deep-objs", "deep-lists"],
)
def test_malformed_execute_bodies_are_400(shared_alice: httpx.Client, body: bytes) -> None:
    reply = shared_alice.post(API, content=body, headers={"content-type": "text/xml"})
    assert_refused(reply, 400)
    assert ph.list_names(shared_alice, "") == ["My Files"]


_BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<obj><att id="type"><val>user-defined</val></att><att id="name"><val>makeCollection</val></att>
<att id="param"><obj><att id="name"><val>&lol9;</val></att>
<att id="parentPath"><val>/ServicesPortal/webdav/My%20Files</val></att></obj></att></obj>"""

_EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE obj [<!ENTITY secret SYSTEM "file:///etc/hostname">]>
<obj><att id="type"><val>user-defined</val></att><att id="name"><val>makeCollection</val></att>
<att id="param"><obj><att id="name"><val>&secret;</val></att>
<att id="parentPath"><val>/ServicesPortal/webdav/My%20Files</val></att></obj></att></obj>"""

_EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE obj SYSTEM "http://127.0.0.1:9/evil.dtd">
<obj><att id="type"><val>user-defined</val></att><att id="name"><val>getTaskStatus</val></att></obj>"""

_PLAIN_DTD = b"""<?xml version="1.0"?><!DOCTYPE obj [<!ELEMENT obj ANY>]>
<obj><att id="type"><val>user-defined</val></att><att id="name"><val>getTaskStatus</val></att></obj>"""


@pytest.mark.parametrize("body", [_BILLION_LAUGHS, _EXTERNAL_ENTITY, _EXTERNAL_DTD, _PLAIN_DTD],
                         ids=["billion-laughs", "external-entity", "external-dtd", "internal-dtd"])
def test_xml_with_dtds_or_entities_is_refused(shared_alice: httpx.Client, body: bytes) -> None:
    started = time.monotonic()
    reply = shared_alice.post(API, content=body, headers={"content-type": "text/xml"})
    assert time.monotonic() - started < 10, "entity expansion must not be attempted"
    assert_refused(reply, 400)
    assert ph.list_names(shared_alice, "My Files") == [], "nothing may be created from an entity"


def test_oversized_execute_body_is_413(portal: PortalProcess, alice: httpx.Client) -> None:
    padding = b"<val>" + b"x" * ((1 << 20) + 10) + b"</val>"
    body = b"<obj><att id='type'><val>user-defined</val></att><att id='pad'>" + padding + b"</att></obj>"
    assert_refused(alice.post(API, content=body), 413)
    # Without a Content-Length (chunked), the limit is enforced while reading.
    assert_refused(alice.post(API, content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)])), 413)
    # A plain socket has no grace for a server that answers and hangs up before the body is in.
    cookie = f"JSESSIONID={alice.cookies['JSESSIONID']}"
    reply = raw_http.exchange(portal, raw_http.request_bytes("POST", API, {"Cookie": cookie}, body * 8))
    assert_refused(reply, 413)
    assert ph.list_names(alice, "") == ["My Files"]
    assert_serving(portal)


def test_unknown_methods_and_call_types_are_400(portal: PortalProcess, alice: httpx.Client) -> None:
    for name in ("noSuchMethod", "", "__init__", "fetchresources", "fetchResources ", "../fetchResources"):
        msg = assert_refused(ph.execute(alice, name, None), 400)
        assert "unknown method" in msg
    for kind in (None, "db", "system", ""):
        envelope = obj(None, type=kind, name="fetchResources", param=None)
        assert_refused(alice.post(API, content=ctera_xml.encode(envelope)), 400)
    assert ph.list_names(alice, "") == ["My Files"]


_OUTSIDE = "/admin/webdav/Users/alice/My%20Files"
_HOSTILE_PARAMS: list[ctera_xml.Value] = [
    None,
    "",
    "x",
    "/ServicesPortal/webdav/%ff",
    [],
    ["a", None],
    obj(None),
    obj(None, root=obj(None)),
    obj(None, root=_OUTSIDE, depth="1"),
    obj(None, root="/ServicesPortal/webdav/My%20Files", start="-5", limit="99999999999999999999", depth="1"),
    obj(None, root="/ServicesPortal/webdav/My%20Files", start="99999999999999999999999", depth="1"),
    obj(None, root="/ServicesPortal/webdav/My%20Files", start="abc", depth="1"),
    obj(None, root="/ServicesPortal/webdav/My%20Files", depth="2"),
    obj(None, root="/ServicesPortal/webdav/My%20Files", depth="Infinity", searchFilters="x"),
    obj(None, root="/ServicesPortal/webdav/My%20Files", depth="Infinity", searchFilters=[obj(None, field=obj(None))]),
    obj(None, root="/ServicesPortal/webdav/My%20Files/%ff", depth="0"),
    obj(None, root="http://[::1/ServicesPortal/webdav", depth="0"),
    obj(None, includeDeleted="maybe", root="/ServicesPortal/webdav", depth="1"),
    obj(None, name=obj(None), parentPath=[]),
    obj(None, name="ok", parentPath=_OUTSIDE),
    obj(None, name="ok", parentPath="/ServicesPortal/webdav/My%20Files/%ff"),
    obj(None, urls="notalist"),
    obj(None, urls=["str"]),
    obj(None, urls=[None]),
    obj(None, urls=[obj(None, src=None, dest=None)]),
    obj(None, urls=[obj(None, src=obj(None), dest=[])]),
    obj(None, urls=[obj(None, src="/ServicesPortal/webdav/My%20Files/%ff", dest="/ServicesPortal/webdav/x")]),
    obj(None, urls=[obj(None, src=_OUTSIDE, dest="/ServicesPortal/webdav/My%20Files/x")]),
    obj(None, urls=[obj(None, src="/ServicesPortal/webdav/My%20Files", dest="/ServicesPortal/webdav/My%20Files/x")]),
    obj(None, urls=[obj(None, src="/ServicesPortal/webdav", dest="/ServicesPortal/webdav/My%20Files/x")]),
    obj(None, urls=[obj(None, src="/ServicesPortal/webdav/My%20Files/a", dest="/ServicesPortal/webdav/b")]),
    obj(None, urls=[obj(None, src="/ServicesPortal/webdav/My%20Files/a", dest="x")], startFrom="x"),
    obj(None, urls=[obj(None, src="/ServicesPortal/webdav/My%20Files/a", dest="/ServicesPortal/webdav/My%20Files/b")],
        startFrom=obj(None, srcResource="x", fileMoveConflictResolutaion=["y"])),
    "servers/MainDB/bgTasks/abc",
    "servers/MainDB/bgTasks/99999999999999999999999999",
    "servers/MainDB/bgTasks/-1",
]


@pytest.mark.parametrize("name", ["fetchResources", "listSnapshots", "makeCollection", "moveResources",
                                  "copyResources", "deleteResources", "restoreResources", "getTaskStatus"])
def test_hostile_parameters_never_cause_a_server_error(portal: PortalProcess, alice: httpx.Client, name: str) -> None:
    ph.put(alice, portal, "My Files/a", b"a")
    for param in _HOSTILE_PARAMS:
        reply = ph.execute(alice, name, param)
        assert reply.status_code < 500, (name, param, reply.text)
        if reply.status_code >= 400:
            assert_refused(reply, reply.status_code)
        else:
            ctera_xml.decode(reply.content)
    ph.list_names(alice, "My Files")
    assert "Traceback" not in portal.log(), portal.log()[-3000:]
    assert_serving(portal)


# --------------------------------------------------------------------- upload


def _upload_raw(http: httpx.Client, body: bytes, content_type: str, uid: str = "1") -> httpx.Response:
    return http.post(f"/ServicesPortal/upload/folders/{uid}", content=body, headers={"content-type": content_type})


def _uid(http: httpx.Client) -> str:
    info = ph.stat(http, "My Files")
    assert info is not None
    folder = ctera_xml.as_obj(info.get("cloudFolderInfo"))
    assert folder is not None
    return str(ctera_xml.as_str(folder.get("uid")))


def _parts(boundary: str, fields: dict[str, str], file: bytes | None, *, close: bool = True) -> bytes:
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    if file is not None:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'.encode() + file
        if close:
            out += f"\r\n--{boundary}--\r\n".encode()
    elif close:
        out += f"--{boundary}--\r\n".encode()
    return out


def _fields(portal: PortalProcess, name: str, size: int | None = None) -> dict[str, str]:
    fields = {"name": name, "Filename": name, "fullpath": f"{portal.url}{ph.webdav_url('My Files/' + name)}"}
    if size is not None:
        fields["fileSize"] = str(size)
    return fields


def _assert_unchanged(http: httpx.Client, name: str, content: bytes | None) -> None:
    """``My Files/name`` still holds ``content`` (None: does not exist)."""
    reply = http.get(ph.webdav_url(f"My Files/{name}"))
    if content is None:
        assert reply.status_code == 404, reply.content[:100]
        assert ph.stat(http, f"My Files/{name}") is None
    else:
        assert reply.status_code == 200 and reply.content == content


def test_uploads_that_are_not_multipart_are_400(portal: PortalProcess, alice: httpx.Client) -> None:
    uid = _uid(alice)
    for content_type in ("application/octet-stream", "multipart/form-data", "multipart/form-data; boundary=",
                         "multipart/mixed; boundary=x", "text/xml", ""):
        assert_refused(_upload_raw(alice, b"data", content_type, uid), 400)
    assert_refused(alice.post(f"/ServicesPortal/upload/folders/{uid}", content=b"x"), 400)
    wait_for_no_tmp_files(portal)
    assert_serving(portal)


def test_multipart_without_a_file_part_is_refused(portal: PortalProcess, alice: httpx.Client) -> None:
    uid = _uid(alice)
    body = _parts("BB", _fields(portal, "nofile.txt", 4), None)
    assert_refused(_upload_raw(alice, body, "multipart/form-data; boundary=BB", uid), 400)
    # A body whose parts use another boundary has no parts at all.
    body = _parts("XX", _fields(portal, "nofile.txt", 4), b"data")
    assert_refused(_upload_raw(alice, body, "multipart/form-data; boundary=BB", uid), 400)
    _assert_unchanged(alice, "nofile.txt", None)
    wait_for_no_tmp_files(portal)


@pytest.mark.parametrize("declared", [0, 5, 9, 11, 10**12])
def test_file_size_mismatch_is_refused_in_band(portal: PortalProcess, alice: httpx.Client, declared: int) -> None:
    ph.put(alice, portal, "My Files/sized.bin", b"old")
    uid = _uid(alice)
    body = _parts("BB", _fields(portal, "sized.bin", declared), b"0123456789")
    reply = _upload_raw(alice, body, "multipart/form-data; boundary=BB", uid)
    assert reply.status_code == 200, reply.text
    rc, msg = ph.error_of(reply)
    assert rc != 0 and msg
    _assert_unchanged(alice, "sized.bin", b"old")
    wait_for_no_tmp_files(portal)


def test_truncated_multipart_body_is_refused_and_commits_nothing(portal: PortalProcess, alice: httpx.Client) -> None:
    """The HTTP body is complete but the multipart stops inside the file part.

    Without ``fileSize`` (the iOS client sends none) only the missing closing
    boundary tells the server the content is incomplete.
    """
    ph.put(alice, portal, "My Files/trunc.bin", b"old content")
    uid = _uid(alice)
    for fields in (_fields(portal, "trunc.bin"), _fields(portal, "trunc.bin", 10)):
        for body in (
            _parts("BB", fields, b"0123456789", close=False),
            _parts("BB", fields, b"0123456789", close=False) + b"\r\n--B",
            _parts("BB", fields, b"0123456789", close=False) + b"\r\n--BB\r\nContent-Disposition: form-da",
        ):
            reply = _upload_raw(alice, body, "multipart/form-data; boundary=BB", uid)
            if reply.status_code == 200:
                assert ph.error_of(reply)[0] != 0, reply.text
            else:
                assert_refused(reply, 400)
            _assert_unchanged(alice, "trunc.bin", b"old content")
    body = _parts("BB", _fields(portal, "new.bin"), b"0123456789", close=False)
    reply = _upload_raw(alice, body, "multipart/form-data; boundary=BB", uid)
    assert reply.status_code != 200 or ph.error_of(reply)[0] != 0
    _assert_unchanged(alice, "new.bin", None)
    wait_for_no_tmp_files(portal)


def test_client_vanishing_mid_upload_leaves_nothing(portal: PortalProcess, alice: httpx.Client) -> None:
    ph.put(alice, portal, "My Files/gone.bin", b"old")
    uid = _uid(alice)
    payload = b"z" * (3 << 20)
    body = _parts("BB", _fields(portal, "gone.bin", 10 << 20), payload, close=False)
    request = raw_http.request_bytes(
        "POST", f"/ServicesPortal/upload/folders/{uid}",
        {"Cookie": f"JSESSIONID={alice.cookies['JSESSIONID']}", "Content-Type": "multipart/form-data; boundary=BB"},
        body, content_length=len(body) + (7 << 20),
    )
    with raw_http.connect(portal) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + 10
        while not tmp_files(portal) and time.monotonic() < deadline:
            time.sleep(0.02)
    wait_for_no_tmp_files(portal)
    _assert_unchanged(alice, "gone.bin", b"old")
    assert_serving(portal)


def test_upload_without_fullpath_or_outside_the_namespace_is_refused(portal: PortalProcess, alice: httpx.Client) -> None:
    uid = _uid(alice)
    cases = [
        {"name": "x.txt", "Filename": "x.txt"},
        {"name": "x.txt", "fullpath": ""},
        {"name": "x.txt", "fullpath": "https://localhost/admin/webdav/Users/alice/My%20Files/x.txt"},
        {"name": "x.txt", "fullpath": "/ServicesPortal/webdav"},
        {"name": "x.txt", "fullpath": "/ServicesPortal/webdav/x.txt"},
        {"name": "x.txt", "fullpath": "/ServicesPortal/webdav/My%20Files/%ff"},
        {"name": "x.txt", "fullpath": "/ServicesPortal/webdav/My%20Files/no/such/dir/x.txt"},
        {"name": "x.txt", "fullpath": "/ServicesPortal/webdav/My%20Files/.snapshots/x.txt"},
        {"name": "x.txt", "fullpath": "/ServicesPortal/webdav/My%20Files/x.txt", "fileSize": "-1"},
    ]
    for fields in cases:
        reply = _upload_raw(alice, _parts("BB", fields, b"data"), "multipart/form-data; boundary=BB", uid)
        if reply.status_code == 200:
            assert ph.error_of(reply)[0] != 0, (fields, reply.text)
        else:
            assert_refused(reply, 400, 403, 404)
    assert ph.list_names(alice, "My Files") == []
    # The cloud folder in the URL must be the destination's.
    body = _parts("BB", _fields(portal, "x.txt", 4), b"data")
    for wrong in ("999", "abc", "%2e%2e"):
        reply = _upload_raw(alice, body, "multipart/form-data; boundary=BB", wrong)
        assert reply.status_code != 200 or ph.error_of(reply)[0] != 0, wrong
    assert ph.list_names(alice, "My Files") == []
    wait_for_no_tmp_files(portal)


def test_oversized_form_field_is_refused(portal: PortalProcess, alice: httpx.Client) -> None:
    fields = _fields(portal, "big-field.txt", 4)
    fields["name"] = "n" * (1 << 20)
    reply = _upload_raw(alice, _parts("BB", fields, b"data"), "multipart/form-data; boundary=BB", _uid(alice))
    assert_refused(reply, 413)
    _assert_unchanged(alice, "big-field.txt", None)
    wait_for_no_tmp_files(portal)
    assert_serving(portal)


def test_garbage_multipart_is_refused(portal: PortalProcess, alice: httpx.Client) -> None:
    uid = _uid(alice)
    for body in (b"--BB\r\nno headers end", b"--BB\r\n\r\n\r\n--BB--", b"\x00" * 1000, b"--BB--\r\n",
                 b"--BB\r\nContent-Disposition: form-data\r\n\r\nx\r\n--BB--\r\n"):
        reply = _upload_raw(alice, body, "multipart/form-data; boundary=BB", uid)
        if reply.status_code == 200:
            assert ph.error_of(reply)[0] != 0, (body, reply.text)
        else:
            assert_refused(reply, 400)
    assert ph.list_names(alice, "My Files") == []
    wait_for_no_tmp_files(portal)
    assert_serving(portal)


def test_refusal_of_a_large_upload_reaches_the_client(tmp_path) -> None:
    """Over quota is known before the content arrives; the SDK must still read ``rc``/``msg``."""
    with running_portal(tmp_path / "data", "--quota", "1M") as portal, ph.logged_in(portal) as http:
        size = 24 << 20
        reply = ph.upload(http, portal, "My Files/too-big.bin", iter([b"q" * (1 << 20)] * 24), size)
        assert reply.status_code == 200
        assert ph.error_of(reply) == (1, "User is out of quota")
        assert ph.stat(http, "My Files/too-big.bin") is None
        # Again from a plain socket, which cannot read a reply once its write failed.
        body = _parts("BB", _fields(portal, "too-big.bin", 40 << 20), b"q" * (40 << 20))
        request = raw_http.request_bytes("POST", f"/ServicesPortal/upload/folders/{_uid(http)}",
                                         {"Cookie": f"JSESSIONID={http.cookies['JSESSIONID']}",
                                          "Content-Type": "multipart/form-data; boundary=BB"}, body)
        reply = raw_http.exchange(portal, request)
        assert reply.status == 200 and b"User is out of quota" in reply.body
        ph.put(http, portal, "My Files/small.bin", b"fits")
        wait_for_no_tmp_files(portal)


def test_an_upload_with_an_expired_session_gets_the_login_redirect(portal: PortalProcess, alice: httpx.Client) -> None:
    """The SDK recognises expiry only by the 302; a reset instead would fail the upload for good.

    Sent with a plain socket: httpx reads a reply even after a failed write,
    which would hide a server that hangs up before taking the body.
    """
    uid = _uid(alice)
    cookie = f"JSESSIONID={alice.cookies['JSESSIONID']}"
    with ph.client(portal) as hook:
        assert hook.post("/portalfs/test/expire-sessions").status_code == 200
    body = _parts("BB", _fields(portal, "late.bin", 12 << 20), b"l" * (12 << 20))
    request = raw_http.request_bytes("POST", f"/ServicesPortal/upload/folders/{uid}",
                                     {"Cookie": cookie, "Content-Type": "multipart/form-data; boundary=BB"}, body)
    reply = raw_http.exchange(portal, request)
    assert reply.status == 302
    assert reply.headers["location"] == "/ServicesPortal/login.html"
    wait_for_no_tmp_files(portal)
