"""A peer that restarted is recognised by its new boot id, so the links to it
reconnect at once instead of writing into a connection to a dead process."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from uhaha.raft.messages import Heartbeat, Message
from uhaha.transport import encode_frame
from uhaha.transport.server import PeerEndpoints


async def test_a_new_boot_id_means_the_peer_restarted() -> None:
    restarted: list[str] = []
    delivered: list[Message] = []
    endpoints = PeerEndpoints(
        "1",
        delivered.append,
        auth=None,
        max_frame_size=1 << 20,
        is_open=lambda: True,
        on_restart=restarted.append,
    )
    app = Starlette(routes=endpoints.routes())
    frame = encode_frame(Heartbeat(1, "2", "1", 0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://n") as c:

        async def stream(boot: str) -> None:
            r = await c.post("/raft/stream", content=frame, headers={"x-uhaha-boot": boot})
            assert r.status_code == 204

        await stream("aaaa")  # first sight: nothing to compare with
        await stream("aaaa")  # the same process reconnecting: not a restart
        assert restarted == []
        await stream("bbbb")  # a new process
        assert restarted == ["2"]
        await stream("bbbb")
        assert restarted == ["2"]
    assert len(delivered) == 4
