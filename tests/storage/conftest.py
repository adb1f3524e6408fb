"""Fixtures shared by the storage tests: a store of each backend, reopenable."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from uhaha.storage.base import Storage
from uhaha.storage.memory import MemoryStorage
from uhaha.storage.sqlite import SQLiteStorage

Opener = Callable[[], Awaitable[Storage]]


@pytest.fixture(params=["sqlite", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the implementation under test."""
    return str(request.param)


@pytest.fixture
async def opener(backend: str, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens the store under test; the same data each time for SQLite. Closes all at the end."""
    opened: list[Storage] = []
    memory = MemoryStorage()

    async def open_store() -> Storage:
        store: Storage = (
            memory if backend == "memory" else await SQLiteStorage.open(tmp_path / "raft.db")
        )
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


@pytest.fixture
async def store(opener: Opener) -> Storage:
    """A fresh store of the backend under test."""
    return await opener()


REPO_ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """The environment for a child Python process, able to import this checkout's uhaha."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env
