"""S3 key pairs with the unmodified vendor SDK (spec §8.1): the ``db get-multi``
user lookup, then ``createApiKey``, ``getApiKeys`` and ``deleteApiKey``.

Effects are checked from another session (the owner's second login, or an
administrator), and the secret must be shown exactly once.
"""

from __future__ import annotations

import pytest
from cterasdk.core.types import UserAccount
from cterasdk.exceptions import ObjectNotFoundException

from tests.support import portal_http as ph
from tests.support.portal_process import PortalProcess
from tests.support.sdk import admin_session, user_session


def test_users_manage_their_own_keys(portal: PortalProcess) -> None:
    with user_session(portal, "alice") as alice:
        created = alice.credentials.s3.create()
        assert len(created.accessKey) == 20 and len(created.secretKey) == 40
    with user_session(portal, "alice") as again:
        (listed,) = again.credentials.s3.all()
        assert (listed.uid, listed.accessKey) == (created.uid, created.accessKey)
        assert not hasattr(listed, "secretKey"), "the secret is shown once, at creation"
        second = again.credentials.s3.create()
        assert second.accessKey != created.accessKey
        again.credentials.s3.delete(created.accessKey)
        assert [key.accessKey for key in again.credentials.s3.all()] == [second.accessKey]

    with user_session(portal, "bob") as bob:
        assert bob.credentials.s3.all() == []
        with pytest.raises(ObjectNotFoundException):  # alice's account is not bob's to look up
            bob.credentials.s3.all(UserAccount("alice"))
    with ph.logged_in(portal, "bob") as http:
        assert ph.execute(http, "deleteApiKey", second.uid).status_code == 404
        assert ph.execute(http, "getApiKeys", second.userUid).status_code == 404


def test_administrators_manage_anyones_keys(portal: PortalProcess) -> None:
    with user_session(portal, "alice") as alice:
        key = alice.credentials.s3.create()
    with admin_session(portal) as admin:
        assert [k.accessKey for k in admin.credentials.s3.all(UserAccount("alice"))] == [key.accessKey]
        admin.credentials.s3.delete(key.accessKey, UserAccount("alice"))
        assert admin.credentials.s3.all(UserAccount("alice")) == []
        with pytest.raises(ObjectNotFoundException):
            admin.credentials.s3.all(UserAccount("nobody"))
    with user_session(portal, "alice") as alice:
        assert alice.credentials.s3.all() == []
