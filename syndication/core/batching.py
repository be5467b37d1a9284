"""Write-behind batching for small store writes that arrive many at a time.

``WriteBehind(write)`` gathers items that arrive while a write is under way and
writes them together next: one transaction per item when they are sparse, a few
large ones when hundreds arrive at once (200 sources answering 304, 10,000 digest
messages accepted). ``add`` returns once its item is in the store, so nothing is
acknowledged before it is durable.

``linger`` (seconds) holds each write back that long to gather more items, for
items that arrive steadily rather than in bursts: SMTP acceptances come one every
fraction of a millisecond, as fast as a write takes, so without it nearly every
write would carry one or two. Each ``add`` then waits up to ``linger`` longer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from syndication.errors import StoreError

T = TypeVar("T")


class WriteBehind(Generic[T]):
    def __init__(self, write: Callable[[Sequence[T]], Awaitable[object]], *, linger: float = 0) -> None:
        self._write = write
        self._linger = linger
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, item: T) -> None:
        """Queue ``item``; returns once it was written (or raises what the write raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._run())
        await done

    async def _run(self) -> None:
        while self._pending:
            if self._linger:
                await asyncio.sleep(self._linger)
            batch, self._pending = self._pending, []
            try:
                await self._write([item for item, _ in batch])
            except Exception as exc:  # handed to every waiter, which reports it
                _settle(batch, exc)
            except BaseException:  # cancelled: the waiters must not hang
                _settle(batch, StoreError("not saved: shutting down"))
                raise
            else:
                _settle(batch, None)


def _settle(batch: list[tuple[T, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, done in batch:
        if done.done():  # its waiter was cancelled
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
