"""Run an :class:`~uhaha.App` node inside the test's own event loop.

``async with serve(app, tmp_path) as addr:`` starts a single-node cluster on
a free loopback port with its own data directory (``app.running``), waits
until it is ready (a leader, the log loaded) and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.harness import free_port
from uhaha import App


async def until(
    cond: Callable[[], Awaitable[Any] | Any], timeout: float = 10.0, what: str = ""
) -> Any:
    """Poll ``cond`` (sync or async) until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if isinstance(value, Awaitable):
                value = await value
            if value:
                return value
        except (OSError, httpx.HTTPError) as e:
            last = e
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or cond} ({last})")


@asynccontextmanager
async def serve(app: App, data: Path, *flags: str) -> AsyncIterator[str]:
    """Run ``app`` as node 1 of a new cluster; yields its ``host:port``."""
    addr = f"127.0.0.1:{free_port()}"
    argv = ["-n", "1", "-a", addr, "-d", str(data), "--localtime", *flags]
    async with app.running(argv), httpx.AsyncClient(timeout=5) as http:

        async def ready() -> bool:
            r = await http.get(f"http://{addr}/readyz")
            return r.status_code == 200

        await until(ready, what="the node to be ready")
        yield addr
