"""Small request bodies leave no async generator behind when their send stops half-way.

httpx sends ``content=`` bytes through an async generator; a send cancelled
after the body's first step abandons it, and trio reports every abandoned
generator as a ``ResourceWarning`` when it is collected (an error in this
suite, and once a flaky one: tests/unit/vfs/test_writes.py).  The backend
sends its small bodies as ``WholeBody`` instead.
"""

from __future__ import annotations

import gc

import httpx
import pytest

from tests.support.portal_process import PortalProcess
from tests.unit.backends.conftest import connect
from vfs.backends.ctera.bodies import WholeBody


async def abandon_after_first_step(stream: httpx.AsyncByteStream) -> bytes:
    """What httpcore does to a body whose send is cancelled after its first write."""
    chunks = aiter(stream)
    first = await anext(chunks)
    del chunks
    gc.collect()
    return first


async def test_a_whole_body_stopped_half_way_leaves_nothing_to_collect() -> None:
    assert await abandon_after_first_step(WholeBody(b"inputXML=...")) == b"inputXML=..."


async def test_httpx_own_byte_stream_would_have_left_a_generator() -> None:
    """The same steps with httpx's stream: the warning this module is about (proof the test above can fail)."""
    with pytest.warns(ResourceWarning, match="garbage collected before it had been exhausted"):
        await abandon_after_first_step(httpx.ByteStream(b"inputXML=..."))


async def test_the_sessions_small_bodies_are_whole_bodies_with_their_length(sample_portal: PortalProcess) -> None:
    async with connect(sample_portal) as backend:  # logged in: the login form went the same way
        session = backend._session
        request = session.build_request("POST", f"{session.context}/api", {"content-type": "text/plain"}, b"<obj/>")
        assert isinstance(request.stream, WholeBody) and request.headers["content-length"] == "6"
        assert request.content == b"<obj/>"  # still readable, for transports that look at it
        assert [chunk async for chunk in request.stream] == [b"<obj/>"]
        assert [chunk async for chunk in request.stream] == [b"<obj/>"]  # each send iterates it afresh
        page = await backend.list_page(("My Files",), 0, 100)
        assert "Documents" in {entry.name for entry in page.entries}
