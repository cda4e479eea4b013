"""WebDAV reads over the wire: ``OPTIONS``, ``PROPFIND`` multistatus structure,
properties that must agree with ``GET``, and hostile request bodies.

Against the seeded ``sample_portal`` (never modified here).  Replies are parsed
as RFC 4918 says a client must: by namespace (``DAV:``), one ``response`` per
resource, hrefs percent-encoded.  Listings are compared with what the CTERA
API (``fetchResources``) shows for the same folder, so both protocols must
describe one namespace.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest

from tests.support import portal_http as ph
from tests.support.portal_process import PortalProcess

DAV = "{DAV:}"
ROOT = "/ServicesPortal/webdav"
ODD_NAME = "q1 & q2 résumé #1.txt"  # a sample file whose name needs encoding

Props = dict[str, tuple[int, ET.Element]]


def dav_client(portal: PortalProcess, user: str = "alice") -> httpx.Client:
    password = portal.admins.get(user) or portal.users[user]
    return httpx.Client(base_url=portal.url, auth=(user, password), verify=ph.tls_context(portal), timeout=60)


@pytest.fixture
def dav(sample_portal: PortalProcess) -> Iterator[httpx.Client]:
    with dav_client(sample_portal) as client:
        yield client


def url(path: str, *, folder: bool = False, root: str = ROOT) -> str:
    encoded = "/".join(urllib.parse.quote(name, safe="") for name in path.split("/") if name)
    return f"{root}/{encoded}" + ("/" if folder and encoded else "")


def propfind(dav: httpx.Client, path: str, depth: str | None = "1", body: str | bytes = b"", **kw) -> httpx.Response:
    headers = {"content-type": "application/xml"} | ({"depth": depth} if depth is not None else {})
    return dav.request("PROPFIND", path if path.startswith("/") else url(path), content=body, headers=headers, **kw)


def parse_multistatus(reply: httpx.Response) -> dict[str, Props]:
    """``{href: {prop tag: (status, element)}}``, checking the RFC 4918 shape on the way."""
    assert reply.status_code == 207, reply.text
    assert reply.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(reply.content)
    assert root.tag == f"{DAV}multistatus"
    result: dict[str, Props] = {}
    for response in root:
        assert response.tag == f"{DAV}response"
        hrefs = response.findall(f"{DAV}href")
        assert len(hrefs) == 1 and hrefs[0].text
        href = hrefs[0].text
        assert href not in result, f"two responses for {href}"
        assert href == urllib.parse.quote(urllib.parse.unquote(href), safe="/"), f"href not percent-encoded: {href}"
        props: Props = {}
        for propstat in response.findall(f"{DAV}propstat"):
            status_line = propstat.findtext(f"{DAV}status") or ""
            assert status_line.startswith("HTTP/1.1 ")
            status = int(status_line.split()[1])
            prop = propstat.find(f"{DAV}prop")
            assert prop is not None
            for element in prop:
                assert element.tag not in props, f"{element.tag} twice for {href}"
                props[element.tag] = (status, element)
        result[href] = props
    return result


def found(props: Props, name: str) -> ET.Element:
    status, element = props[f"{DAV}{name}"]
    assert status == 200, f"{name}: {status}"
    return element


def is_collection(props: Props) -> bool:
    return found(props, "resourcetype").find(f"{DAV}collection") is not None


def prop_request(*names: str, extra: str = "") -> str:
    inner = "".join(f"<D:{name}/>" for name in names)
    return f'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"{extra}><D:prop>{inner}</D:prop></D:propfind>'


# ---------------------------------------------------------------- OPTIONS


def test_options_advertises_class_1(dav: httpx.Client) -> None:
    reply = dav.options(url("My Files"))
    assert reply.status_code == 200
    assert "1" in [part.strip() for part in reply.headers["dav"].split(",")]
    allowed = {verb.strip() for verb in reply.headers["allow"].split(",")}
    assert {"PROPFIND", "PUT", "MKCOL", "DELETE", "COPY", "MOVE", "GET", "HEAD", "OPTIONS"} <= allowed


def test_unsupported_method_is_405_with_allow(dav: httpx.Client) -> None:
    reply = dav.request("LOCK", url("My Files/Documents/Report.txt"))
    assert reply.status_code == 405
    assert "PROPFIND" in reply.headers["allow"]


def test_webdav_requires_credentials(sample_portal: PortalProcess) -> None:
    with httpx.Client(base_url=sample_portal.url, verify=ph.tls_context(sample_portal), timeout=60) as anonymous:
        reply = propfind(anonymous, "My Files", "0")
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].lower().startswith("basic")


# --------------------------------------------------------------- PROPFIND


def test_depth_0_describes_only_the_folder(dav: httpx.Client) -> None:
    answer = parse_multistatus(propfind(dav, "My Files/Documents", "0"))
    assert list(answer) == [url("My Files/Documents", folder=True)]
    props = answer[url("My Files/Documents", folder=True)]
    assert is_collection(props)
    assert found(props, "displayname").text == "Documents"
    assert f"{DAV}getcontentlength" not in props and f"{DAV}getetag" not in props
    assert f"{DAV}quota-used-bytes" not in props, "RFC 4331 quota is not part of allprop"


def test_depth_1_lists_each_child_once_as_the_ctera_api_does(sample_portal: PortalProcess, dav: httpx.Client) -> None:
    answer = parse_multistatus(propfind(dav, "My Files/Documents"))
    self_href = url("My Files/Documents", folder=True)
    assert next(iter(answer)) == self_href, "the folder itself comes first"
    children = {href: props for href, props in answer.items() if href != self_href}
    with ph.logged_in(sample_portal) as http:
        expected = ph.list_names(http, "My Files/Documents")
    assert ODD_NAME in expected
    assert sorted(children) == sorted(url(f"My Files/Documents/{name}") for name in expected)
    for href, props in children.items():
        assert found(props, "displayname").text == urllib.parse.unquote(href.rsplit("/", 1)[1])
        assert not is_collection(props)
    assert url(f"My Files/Documents/{ODD_NAME}") == f"{ROOT}/My%20Files/Documents/q1%20%26%20q2%20r%C3%A9sum%C3%A9%20%231.txt"


def test_folders_have_trailing_slash_hrefs_and_root_lists_cloud_folders(dav: httpx.Client) -> None:
    answer = parse_multistatus(propfind(dav, f"{ROOT}/"))
    assert list(answer) == [f"{ROOT}/", url("My Files", folder=True)]
    assert all(is_collection(props) for props in answer.values())
    top = parse_multistatus(propfind(dav, "My Files"))
    assert url("My Files/Documents", folder=True) in top
    assert url("My Files/Projects", folder=True) in top
    assert not any(".snapshots" in href for href in top), ".snapshots is hidden from listings"


def test_file_properties_agree_with_get(dav: httpx.Client) -> None:
    answer = parse_multistatus(propfind(dav, "My Files/Documents"))
    files = {href: props for href, props in answer.items() if not href.endswith("/")}
    assert len(files) >= 4
    for href, props in files.items():
        head = dav.head(href)
        assert head.status_code == 200, href
        assert found(props, "getetag").text == head.headers["etag"]
        assert found(props, "getcontentlength").text == head.headers["content-length"]
        assert found(props, "getlastmodified").text == head.headers["last-modified"]
        assert found(props, "getcontenttype").text == head.headers["content-type"]
        modified = email.utils.parsedate_to_datetime(found(props, "getlastmodified").text or "")
        created = dt.datetime.fromisoformat((found(props, "creationdate").text or "").replace("Z", "+00:00"))
        assert created.tzinfo is not None and abs((created - modified).total_seconds()) < 1
    body = dav.get(url(f"My Files/Documents/{ODD_NAME}"))
    assert found(files[url(f"My Files/Documents/{ODD_NAME}")], "getcontentlength").text == str(len(body.content))


def test_depth_1_pages_through_a_folder_of_thousands(dav: httpx.Client) -> None:
    answer = parse_multistatus(propfind(dav, "My Files/Many files", body=prop_request("displayname", "getetag")))
    names = [found(props, "displayname").text for href, props in answer.items() if not href.endswith("/")]
    assert len(answer) == 3001
    assert sorted(names) == [f"entry-{index:05d}.txt" for index in range(3000)]


def test_depth_infinity_and_missing_depth_are_refused(dav: httpx.Client) -> None:
    for depth in ("infinity", "Infinity", None):
        reply = propfind(dav, "My Files", depth)
        assert reply.status_code == 403, depth
        error = ET.fromstring(reply.content)
        assert error.tag == f"{DAV}error"
        assert error.find(f"{DAV}propfind-finite-depth") is not None
    assert propfind(dav, "My Files", "2").status_code == 400


def test_prop_request_puts_unknown_properties_in_a_404_propstat(dav: httpx.Client) -> None:
    body = prop_request("getetag", "getcontentlength", "displayname", extra=' xmlns:X="urn:example:x"')
    body = body.replace("</D:prop>", "<X:colour/><plain xmlns=''/></D:prop>")
    answer = parse_multistatus(propfind(dav, "My Files/Documents", body=body))
    folder = answer[url("My Files/Documents", folder=True)]
    assert found(folder, "displayname").text == "Documents"
    assert folder[f"{DAV}getetag"][0] == 404, "folders have no ETag (GET on a folder has none)"
    assert folder["{urn:example:x}colour"][0] == 404
    assert folder["plain"][0] == 404
    report = answer[url("My Files/Documents/Report.txt")]
    assert set(report) == {f"{DAV}getetag", f"{DAV}getcontentlength", f"{DAV}displayname", "{urn:example:x}colour", "plain"}
    assert found(report, "getetag").text and found(report, "getcontentlength").text
    assert report["{urn:example:x}colour"][0] == 404


def test_propname_lists_names_without_values(dav: httpx.Client) -> None:
    body = '<?xml version="1.0"?><propfind xmlns="DAV:"><propname/></propfind>'
    answer = parse_multistatus(propfind(dav, "My Files/Documents", body=body))
    folder = answer[url("My Files/Documents", folder=True)]
    assert {f"{DAV}resourcetype", f"{DAV}quota-used-bytes", f"{DAV}quota-available-bytes"} <= set(folder)
    report = answer[url("My Files/Documents/Report.txt")]
    assert {f"{DAV}getetag", f"{DAV}getcontentlength", f"{DAV}getlastmodified"} <= set(report)
    for props in answer.values():
        for status, element in props.values():
            assert status == 200 and len(element) == 0 and not (element.text or "").strip()


def test_allprop_with_include_adds_quota(dav: httpx.Client) -> None:
    body = (
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/>'
        "<D:include><D:quota-used-bytes/><D:quota-available-bytes/></D:include></D:propfind>"
    )
    props = parse_multistatus(propfind(dav, "My Files", "0", body=body))[url("My Files", folder=True)]
    assert is_collection(props)
    assert int(found(props, "quota-used-bytes").text or "") > 0
    assert int(found(props, "quota-available-bytes").text or "") > 0


def test_quota_is_reported_on_collections_of_an_owner(dav: httpx.Client) -> None:
    body = prop_request("quota-used-bytes", "quota-available-bytes")
    root = parse_multistatus(propfind(dav, f"{ROOT}/", body=body))
    values = {href: (found(p, "quota-used-bytes").text, found(p, "quota-available-bytes").text) for href, p in root.items()}
    assert len(set(values.values())) == 1, "quota is per user: the root and My Files agree"
    report = parse_multistatus(propfind(dav, "My Files/Documents/Report.txt", "0", body=body))
    assert all(status == 404 for status, _ in report[url("My Files/Documents/Report.txt")].values())


def test_snapshots_list_read_only_history(dav: httpx.Client) -> None:
    answer = parse_multistatus(propfind(dav, "My Files/.snapshots"))
    snapshots = [href for href in answer if href != url("My Files/.snapshots", folder=True)]
    assert len(snapshots) == 2
    oldest = sorted(snapshots)[0]
    old_documents = parse_multistatus(propfind(dav, oldest + "Documents/"))
    assert oldest + "Documents/Old%20notes.txt" in old_documents, "the deleted file is in the old snapshot"
    reply = dav.put(oldest + "Documents/new.txt", content=b"x")
    assert reply.status_code == 403


def test_admin_context_sees_users(sample_portal: PortalProcess) -> None:
    with dav_client(sample_portal, "root") as admin:
        root = parse_multistatus(propfind(admin, "/admin/webdav/"))
        assert list(root) == ["/admin/webdav/", "/admin/webdav/Users/"]
        users = parse_multistatus(propfind(admin, "/admin/webdav/Users"))
        assert sorted(users) == ["/admin/webdav/Users/", "/admin/webdav/Users/alice/", "/admin/webdav/Users/bob/"]
        documents = parse_multistatus(propfind(admin, url("Users/alice/My Files/Documents", root="/admin/webdav")))
        assert url(f"Users/alice/My Files/Documents/{ODD_NAME}", root="/admin/webdav") in documents
    with dav_client(sample_portal, "alice") as alice:
        assert propfind(alice, "/admin/webdav/", "0").status_code == 401, "end users have no /admin"


def test_missing_resource_is_404(dav: httpx.Client) -> None:
    assert propfind(dav, "My Files/no such folder", "0").status_code == 404
    assert propfind(dav, "My Files/Documents/Report.txt/below", "1").status_code == 404
    assert propfind(dav, f"{ROOT}/My%20Files/..%2F..", "0").status_code == 404


# ------------------------------------------------------------ bad bodies


BAD_BODIES = {
    "not XML": (b"this is not xml", 400),
    "truncated": (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>', 400),
    "wrong root": (b'<D:propertyupdate xmlns:D="DAV:"/>', 400),
    "no namespace": (b"<propfind><allprop/></propfind>", 400),
    "two kinds": (b'<D:propfind xmlns:D="DAV:"><D:allprop/><D:propname/></D:propfind>', 400),
    "empty propfind": (b'<D:propfind xmlns:D="DAV:"/>', 400),
    "entity expansion": (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&b;</D:displayname></D:prop></D:propfind>',
        400,
    ),
    "external entity": (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&x;</D:displayname></D:prop></D:propfind>',
        400,
    ),
    "oversized": (b'<D:propfind xmlns:D="DAV:"><D:prop>' + b"<D:displayname/>" * 10000 + b"</D:prop></D:propfind>", 413),
    "invalid UTF-8": (b'<D:propfind xmlns:D="DAV:"><D:prop><D:\xff/></D:prop></D:propfind>', 400),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_hostile_propfind_bodies_get_a_clear_status(dav: httpx.Client, case: str) -> None:
    body, status = BAD_BODIES[case]
    reply = propfind(dav, "My Files", "0", body=body)
    assert reply.status_code == status, reply.text
    assert b"root:" not in reply.content
    # ... and the server keeps serving.
    assert parse_multistatus(propfind(dav, "My Files", "0"))


def test_bad_headers_get_a_clear_status(dav: httpx.Client) -> None:
    assert propfind(dav, "My Files", "one").status_code == 400
    assert dav.request("COPY", url("My Files/Documents/Report.txt")).status_code == 400, "no Destination"
    reply = dav.request(
        "COPY", url("My Files/Documents/Report.txt"), headers={"destination": url("My Files/x"), "overwrite": "maybe"}
    )
    assert reply.status_code == 400
    reply = dav.request("COPY", url("My Files/Documents/Report.txt"), headers={"destination": "http://[::1"})
    assert reply.status_code == 400
    reply = dav.request("COPY", url("My Files/Documents/Report.txt"), headers={"destination": f"{ROOT}/My%20Files/%FF"})
    assert reply.status_code == 400
    assert parse_multistatus(propfind(dav, "My Files", "0"))
