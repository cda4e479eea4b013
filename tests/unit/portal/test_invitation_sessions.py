"""Anonymous (invitation) sessions cost nothing to open, so they must not pile up."""

from __future__ import annotations

import pytest

from portal.http import sessions
from portal.http.sessions import INVITATIONS, SERVICES, SessionTable
from portal.store import Store


def test_anonymous_sessions_are_capped_oldest_first(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "MAX_ANONYMOUS", 5)
    table = SessionTable(store)
    owner = store.user("alice")
    assert owner is not None
    user_session = table.login("alice", "alice-secret", SERVICES)
    assert user_session is not None
    opened = [table.open_anonymous(owner, INVITATIONS, invite="abc").id for _ in range(8)]
    assert [table.get(sid, INVITATIONS) is not None for sid in opened] == [False] * 3 + [True] * 5
    assert table.get(user_session.id, SERVICES) is not None, "logins are not anonymous sessions"
    assert table.get(opened[-1], SERVICES) is None, "an invitation session is good in its own context only"
