"""Sharing with the unmodified vendor SDK: public links, collaboration shares,
and what their recipients can actually reach.

Every claim is checked through a second route: a link is opened with the
SDK's own ``Invitation`` client *and* with raw HTTP; a share made by alice
is checked by bob listing and downloading it, and by ``listShares``.  Escape
attempts go over a raw socket so no client library tidies the path first.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cterasdk import ServicesPortal
from cterasdk.core.types import Collaborator, UserAccount
from cterasdk.exceptions.io.core import (
    CreateLinkError,
    DeleteError,
    ExternalShareError,
    GetShareMetadataError,
    InvalidShareError,
    ObjectNotFoundError,
    PrivilegeError,
    ROFSError,
)
from cterasdk.objects.synchronous.invitation import Invitation

from tests.support import portal_http as ph
from tests.support import raw_http
from tests.support.portal_process import PortalProcess
from tests.support.sdk import user_session
from wire import ctera_xml
from wire.ctera_xml import obj

pytestmark = pytest.mark.filterwarnings("ignore:In v4, passing bytes will no longer create a file field")

REPORT = b"quarterly numbers 4f1c\n" * 100
SECRET = b"alice's unshared secret 9d2e"
NOTES = b"notes inside the shared folder"


@pytest.fixture
def alice(portal: PortalProcess) -> Iterator[ServicesPortal]:
    with user_session(portal, "alice") as client:
        client.files.makedirs("My Files/Docs/Inner")
        client.files.upload("My Files/Docs/report.txt", REPORT)
        client.files.upload("My Files/Docs/Inner/notes.txt", NOTES)
        client.files.upload("My Files/secret.txt", SECRET)
        yield client


def invite_of(link: str) -> str:
    match = re.fullmatch(r"https://[^/]+/invitations/\?share=([A-Za-z0-9]+)", link)
    assert match, link
    return match.group(1)


@contextmanager
def open_link(portal: PortalProcess, link: str) -> Iterator[httpx.Client]:
    """A raw client holding the anonymous session that opening ``link`` creates."""
    with ph.client(portal) as http:
        reply = http.get("/invitations/", params={"share": invite_of(link)})
        assert reply.status_code == 200, reply.text
        assert http.cookies.get("JSESSIONID")
        yield http


def download(client: ServicesPortal | Invitation, path: str | None, tmp_path: Path) -> bytes:
    target = tmp_path / f"dl-{len(list(tmp_path.iterdir()))}"
    target.mkdir()
    return Path(client.files.download(path, destination=str(target) + "/")).read_bytes()


def error_message(reply: httpx.Response) -> str:
    return ph.error_of(reply)[1]


def scope_and_permission(info: ctera_xml.Obj | None) -> tuple[str | None, str | None]:
    """What the SDK's resource objects leave out: ``ResourceInfo.scope`` and ``.permission``."""
    assert info is not None
    return ctera_xml.as_str(info.get("scope")), ctera_xml.as_str(info.get("permission"))


def guest_stat(http: httpx.Client, invite: str, path: str = "") -> ctera_xml.Obj | None:
    root = f"/invitations/webdav/share/{invite}" + (f"/{path}" if path else "")
    reply = guest_execute(http, invite, "fetchResources", obj("FetchResourcesParam", root=root, depth="0"))
    assert reply.status_code == 200, reply.text
    return ctera_xml.as_obj(ctera_xml.as_obj(ctera_xml.decode(reply.content)).get("root"))  # type: ignore[union-attr]


def guest_execute(http: httpx.Client, invite: str, name: str, param: ctera_xml.Value) -> httpx.Response:
    """An ``execute`` call in the invitation context (its URL names the link)."""
    body = ctera_xml.encode(obj(None, type="user-defined", name=name, param=param))
    return http.post(f"/invitations/portalInvitation/share/{invite}", content=body)


# -------------------------------------------------------------- public links


def test_public_link_to_a_file_opens_with_the_sdk_and_raw_http(
    portal: PortalProcess, alice: ServicesPortal, tmp_path: Path
) -> None:
    link = alice.files.public_link("My Files/Docs/report.txt")
    invite = invite_of(link)
    assert f"://{portal.host}:{portal.port}/" in link

    with Invitation.from_uri(link) as guest:
        assert (guest.details.access, guest.details.is_dir) == ("ReadOnly", False)
        assert download(guest, None, tmp_path) == REPORT
        assert download(guest, "report.txt", tmp_path) == REPORT
        info = guest.files.properties(None)
        assert (info.name, info.size, info.is_dir) == ("report.txt", len(REPORT), False)

    with open_link(portal, link) as http:
        reply = http.get(f"/invitations/webdav/share/{invite}/report.txt")
        assert (reply.status_code, reply.content) == (200, REPORT)
        assert http.get(f"/invitations/webdav/share/{invite}").content == REPORT
        assert scope_and_permission(guest_stat(http, invite)) == ("Shared", "ReadOnly")
        assert http.get(f"/invitations/webdav/share/{invite}/secret.txt").status_code == 404
        # The page for browsers links the download.
        page = http.get("/invitations/", params={"share": invite}).text
        assert f"/invitations/webdav/share/{invite}/report.txt" in page

    with ph.client(portal) as stranger:  # never opened the link
        assert stranger.get(f"/invitations/webdav/share/{invite}/report.txt").status_code == 403


def test_public_link_to_a_folder_lists_downloads_and_zips_only_that_folder(
    portal: PortalProcess, alice: ServicesPortal, tmp_path: Path
) -> None:
    link = alice.files.public_link("My Files/Docs", access="RO")
    with Invitation.from_uri(link) as guest:
        assert (guest.details.access, guest.details.is_dir) == ("ReadOnly", True)
        assert sorted(entry.name for entry in guest.files.listdir(None)) == ["Inner", "report.txt"]
        assert [entry.name for entry in guest.files.listdir("Inner")] == ["notes.txt"]
        assert download(guest, "Inner/notes.txt", tmp_path) == NOTES
        archive = zipfile.ZipFile(io.BytesIO(download(guest, None, tmp_path)))
        assert sorted(archive.namelist()) == ["Inner/", "Inner/notes.txt", "report.txt"]
        assert archive.read("report.txt") == REPORT

    invite = invite_of(link)
    with open_link(portal, link) as http:
        cookie = f"JSESSIONID={http.cookies['JSESSIONID']}"
        assert http.get(f"/invitations/webdav/share/{invite}/Inner/notes.txt").content == NOTES
        for spelling in ("%2e%2e/secret.txt", "../secret.txt", "..%2fsecret.txt", "Inner/../../secret.txt",
                         "%2e%2e/%2e%2e/ServicesPortal/webdav/My%20Files/secret.txt", "..", "%00/secret.txt"):
            reply = raw_http.exchange(portal, raw_http.request_bytes(
                "GET", f"/invitations/webdav/share/{invite}/{spelling}", {"Cookie": cookie}))
            assert reply.status in (400, 404), (spelling, reply.status)
            assert SECRET not in reply.body
        # The session is bound to its link: another id, even a real one, is refused.
        other = invite_of(alice.files.public_link("My Files/secret.txt"))
        assert http.get(f"/invitations/webdav/share/{other}/secret.txt").status_code == 403
        # No recycle bin and no snapshots through a link.
        alice.files.delete("My Files/Docs/Inner/notes.txt")
        listing = guest_execute(http, invite, "fetchResources", obj(
            "FetchResourcesParam", root=f"/invitations/webdav/share/{invite}/Inner", depth="1",
            start="0", limit="100", includeDeleted="true"))
        assert listing.status_code == 200 and b"notes.txt" not in listing.content
        # Only the methods a guest needs answer in this context.
        assert guest_execute(http, invite, "deleteResources", ph.resource_pairs(
            (f"/invitations/webdav/share/{invite}/report.txt", None))).status_code == 400
        assert http.get(f"/invitations/webdav/share/{invite}/.snapshots").status_code == 404
        # The owner's session cookie means nothing here, and this one nothing there.
        assert http.get("/ServicesPortal/api/currentSession", follow_redirects=False).status_code == 302


def test_link_access_modes(portal: PortalProcess, alice: ServicesPortal, tmp_path: Path) -> None:
    preview = alice.files.public_link("My Files/Docs", access="PO")
    with Invitation.from_uri(preview) as guest:
        assert guest.details.access == "PreviewOnly"
        assert sorted(entry.name for entry in guest.files.listdir(None)) == ["Inner", "report.txt"]
    with open_link(portal, preview) as http:
        reply = http.get(f"/invitations/webdav/share/{invite_of(preview)}/report.txt")
        assert reply.status_code == 403 and REPORT not in reply.content

    upload_only = alice.files.public_link("My Files/Docs", access="UO")
    with Invitation.from_uri(upload_only) as guest:
        assert guest.details.access == "UploadOnly"
        assert list(guest.files.listdir(None)) == []
    with open_link(portal, upload_only) as http:
        assert http.get(f"/invitations/webdav/share/{invite_of(upload_only)}/report.txt").status_code in (403, 404)

    read_write = alice.files.public_link("My Files/Docs", access="RW")
    with Invitation.from_uri(read_write) as guest:
        assert guest.details.access == "ReadWrite"
        # Writes through links are not offered: the listing says so, and the SDK refuses before sending.
        with pytest.raises(PrivilegeError):
            guest.files.upload("Inner/new.txt", b"from a guest")
    with open_link(portal, read_write) as http:
        assert scope_and_permission(guest_stat(http, invite_of(read_write), "Inner")) == ("InsideCloudFolder", "ReadOnly")
    assert "new.txt" not in [entry.name for entry in alice.files.listdir("My Files/Docs/Inner")]


def test_expired_link_is_no_longer_valid(portal: PortalProcess, alice: ServicesPortal) -> None:
    link = alice.files.public_link("My Files/Docs/report.txt", expire_in=-1)
    guest = Invitation.from_uri(link)
    try:
        with pytest.raises(ExternalShareError) as caught:
            guest.login()
    finally:
        guest.logout()
    assert isinstance(caught.value.__cause__, InvalidShareError)
    with open_link(portal, link) as http:
        reply = http.get(f"/invitations/webdav/share/{invite_of(link)}/report.txt")
        assert reply.status_code == 403 and "no longer valid" in error_message(reply)
    # A link expiring today still works all day.
    with Invitation.from_uri(alice.files.public_link("My Files/Docs/report.txt", expire_in=0)) as guest:
        assert guest.details.access == "ReadOnly"


def test_link_follows_its_item_and_pauses_while_it_is_deleted(portal: PortalProcess, alice: ServicesPortal) -> None:
    link = alice.files.public_link("My Files/Docs/report.txt")
    invite = invite_of(link)
    alice.files.rename("My Files/Docs/report.txt", "renamed.txt")
    with open_link(portal, link) as http:
        assert http.get(f"/invitations/webdav/share/{invite}/renamed.txt").content == REPORT
        alice.files.delete("My Files/Docs/renamed.txt")
        assert http.get(f"/invitations/webdav/share/{invite}/renamed.txt").status_code == 404
        alice.files.undelete("My Files/Docs/renamed.txt")
        assert http.get(f"/invitations/webdav/share/{invite}/renamed.txt").content == REPORT


def test_sharing_refusals(portal: PortalProcess, alice: ServicesPortal) -> None:
    with pytest.raises(CreateLinkError) as caught:
        alice.files.public_link("My Files/missing.txt")
    assert isinstance(caught.value.__cause__, ObjectNotFoundError)
    with pytest.raises(GetShareMetadataError) as caught_info:
        alice.files.get_share_info("My Files/missing")
    assert isinstance(caught_info.value.__cause__, ObjectNotFoundError)
    with ph.logged_in(portal, "alice") as http:
        for url in ("/ServicesPortal/webdav", "/ServicesPortal/webdav/My%20Files/.snapshots"):
            share = obj("ShareConfig", accessMode="ReadOnly", protectionLevel="publicLink", expiration=None,
                        invitee=obj("Collaborator", type="external"))
            assert ph.execute(http, "createShare", obj("CreateShareParam", url=url, share=share)).status_code == 403
        bad_mode = obj("ShareConfig", accessMode="Everything", protectionLevel="publicLink",
                       invitee=obj("Collaborator", type="external"))
        reply = ph.execute(http, "createShare", obj("CreateShareParam", url=ph.href("My Files/Docs"), share=bad_mode))
        assert reply.status_code == 400


# ------------------------------------------------------ collaboration shares


def test_share_with_a_local_user(portal: PortalProcess, alice: ServicesPortal, tmp_path: Path) -> None:
    members = alice.files.share("My Files/Docs", [Collaborator.local_user(UserAccount("bob")).read_only()])
    assert [member.account for member in members] == [UserAccount("bob")]

    info = alice.files.get_share_info("My Files/Docs")
    assert (info.teamProject, info.shouldSync) == (False, False), "a sub-folder is no team project"
    (config,) = info.shares
    assert (config.accessMode, config.invitee.type, config.invitee.name) == ("ReadOnly", "localUser", "bob")

    with user_session(portal, "bob") as bob, ph.logged_in(portal, "bob") as http:
        assert [entry.name for entry in bob.files.listdir("/")] == ["My Files", "Shared With Me"]
        assert scope_and_permission(ph.stat(http, "Shared With Me")) == ("SharedContainer", "ReadOnly")
        assert [entry.name for entry in bob.files.listdir("Shared With Me")] == ["Docs"]
        assert scope_and_permission(ph.stat(http, "Shared With Me/Docs")) == ("Shared", "ReadOnly")
        assert sorted(entry.name for entry in bob.files.listdir("Shared With Me/Docs")) == ["Inner", "report.txt"]
        assert download(bob, "Shared With Me/Docs/report.txt", tmp_path) == REPORT
        assert download(bob, "Shared With Me/Docs/Inner/notes.txt", tmp_path) == NOTES
        archive = zipfile.ZipFile(io.BytesIO(download(bob, "Shared With Me/Docs", tmp_path)))
        assert sorted(archive.namelist()) == ["Inner/", "Inner/notes.txt", "report.txt"]
        # The fileId is the owner's item's: the same object seen from two places.
        assert bob.files.properties("Shared With Me/Docs/report.txt").id == alice.files.properties(
            "My Files/Docs/report.txt").id
        with pytest.raises(PrivilegeError):
            bob.files.upload("Shared With Me/Docs/Inner/bob.txt", b"from bob")
        with pytest.raises(ROFSError):  # the SDK uploads into no "Shared" item itself
            bob.files.upload("Shared With Me/Docs/bob.txt", b"from bob")
        with pytest.raises(DeleteError):
            bob.files.delete("Shared With Me/Docs/report.txt")
        assert "secret.txt" not in [entry.name for entry in bob.files.listdir("Shared With Me/Docs")]
        # No re-sharing, and nothing of alice's outside the share.
        with pytest.raises(CreateLinkError):
            bob.files.public_link("Shared With Me/Docs/report.txt")
    assert sorted(entry.name for entry in alice.files.listdir("My Files/Docs")) == ["Inner", "report.txt"]


def test_add_and_remove_recipients_then_unshare(portal: PortalProcess, alice: ServicesPortal) -> None:
    alice.files.share("My Files/Docs", [Collaborator.external("guest@example.com").read_only()])
    alice.files.add_share_recipients("My Files/Docs", [Collaborator.local_user(UserAccount("bob")).read_write()])
    shares = alice.files.get_share_info("My Files/Docs").shares
    assert [(s.invitee.type, s.invitee.email or s.invitee.name, s.accessMode) for s in shares] == [
        ("external", "guest@example.com", "ReadOnly"), ("localUser", "bob", "ReadWrite")]
    assert shares[0].protectionLevel == "publicLink"

    with user_session(portal, "bob") as bob, ph.logged_in(portal, "bob") as http:
        assert scope_and_permission(ph.stat(http, "Shared With Me/Docs"))[1] == "ReadOnly", "no writes through shares"
        alice.files.remove_share_recipients("My Files/Docs", [UserAccount("bob")])
        assert [s.invitee.type for s in alice.files.get_share_info("My Files/Docs").shares] == ["external"]
        assert [entry.name for entry in bob.files.listdir("/")] == ["My Files"]

    alice.files.unshare("My Files/Docs")
    assert alice.files.get_share_info("My Files/Docs").shares == []


def test_shares_and_links_are_separate_lists(portal: PortalProcess, alice: ServicesPortal) -> None:
    link = alice.files.public_link("My Files/Docs")
    alice.files.share("My Files/Docs", [Collaborator.local_user(UserAccount("bob")).read_only()])
    alice.files.unshare("My Files/Docs")
    assert alice.files.get_share_info("My Files/Docs").shares == []
    with Invitation.from_uri(link) as guest:  # unsharing collaborators leaves the link alone
        assert guest.details.is_dir is True


def test_expired_or_no_access_shares_are_not_shown(portal: PortalProcess, alice: ServicesPortal) -> None:
    alice.files.share("My Files/Docs", [Collaborator.local_user(UserAccount("bob")).read_only().expire_in(-1)])
    alice.files.share("My Files/secret.txt", [Collaborator.local_user(UserAccount("bob")).no_access()])
    with user_session(portal, "bob") as bob:
        assert [entry.name for entry in bob.files.listdir("/")] == ["My Files"]
    alice.files.share("My Files/Docs", [Collaborator.local_user(UserAccount("bob")).preview_only()])
    with user_session(portal, "bob") as bob, ph.logged_in(portal, "bob") as http:
        assert bob.files.properties("Shared With Me/Docs/report.txt").size == len(REPORT)
        assert scope_and_permission(ph.stat(http, "Shared With Me/Docs/report.txt"))[1] == "PreviewOnly"
        assert http.get(ph.webdav_url("Shared With Me/Docs/report.txt")).status_code == 403


def test_whole_cloud_folder_share_and_name_clashes(portal: PortalProcess, alice: ServicesPortal) -> None:
    alice.files.share("My Files", [Collaborator.local_user(UserAccount("bob")).read_only()])
    info = alice.files.get_share_info("My Files")
    assert (info.teamProject, info.allowReshare, info.shouldSync) == (True, True, True)
    alice.files.makedirs("My Files/Other/My Files")
    alice.files.share("My Files/Other/My Files", [Collaborator.local_user(UserAccount("bob")).read_only()])
    with user_session(portal, "bob") as bob:
        names = sorted(entry.name for entry in bob.files.listdir("Shared With Me"))
        assert names == ["My Files", "My Files (alice)"]
        assert "secret.txt" in [entry.name for entry in bob.files.listdir("Shared With Me/My Files")]
        # Bob's own My Files is untouched by what is shared with him.
        assert list(bob.files.listdir("My Files")) == []


def test_search_collaboration_members(portal: PortalProcess, alice: ServicesPortal) -> None:
    with ph.logged_in(portal, "alice") as http:
        folder = ph.stat(http, "My Files")
        assert folder is not None
        uid = ctera_xml.as_int(ctera_xml.as_obj(folder.get("cloudFolderInfo")).get("uid"))  # type: ignore[union-attr]

        def search(kind: str, term: str) -> list[ctera_xml.Obj]:
            answer = ctera_xml.as_obj(ph.call(http, "searchCollaborationMembers", obj(
                None, searchType=kind, searchTerm=term, resourceUid=uid, countLimit=10)))
            assert answer is not None
            return list(ctera_xml.iter_objs(answer.get("objects")))

        (found,) = search("users", "BO")
        assert (ctera_xml.as_str(found.get("type")), ctera_xml.as_str(found.get("name"))) == ("localUser", "bob")
        assert search("users", "alice") == [], "nobody shares with themselves"
        assert search("users", "root") == [], "administrators are no collaborators"
        assert search("groups", "bob") == []


def test_stock_webdav_clients_see_shares_read_only(portal: PortalProcess, alice: ServicesPortal) -> None:
    alice.files.share("My Files/Docs", [Collaborator.local_user(UserAccount("bob")).read_write()])
    propfind = (b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop><displayname/>'
                b"<quota-used-bytes/></prop></propfind>")
    with ph.client(portal, auth=("bob", portal.users["bob"])) as dav:
        reply = dav.request("PROPFIND", ph.webdav_url("Shared With Me/Docs/"), headers={"Depth": "1"}, content=propfind)
        assert reply.status_code == 207 and "report.txt" in reply.text
        assert ">secret.txt<" not in reply.text
        assert "<quota-used-bytes>" not in reply.text.replace("D:", ""), "the owner's usage stays the owner's"
        assert dav.get(ph.webdav_url("Shared With Me/Docs/report.txt")).content == REPORT
        assert dav.put(ph.webdav_url("Shared With Me/Docs/new.txt"), content=b"x").status_code == 403
        assert dav.request("DELETE", ph.webdav_url("Shared With Me/Docs/report.txt")).status_code == 403
    assert sorted(entry.name for entry in alice.files.listdir("My Files/Docs")) == ["Inner", "report.txt"]
