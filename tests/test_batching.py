"""``WriteBehind``: items that arrive while a write is under way, or within the
linger, are written together; every ``add`` returns once its item is written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from syndication.core.batching import WriteBehind
from syndication.errors import StoreError


class Recorder:
    def __init__(self, *, fail: bool = False) -> None:
        self.writes: list[list[int]] = []
        self.fail = fail

    async def write(self, items: Sequence[int]) -> None:
        await asyncio.sleep(0.01)
        if self.fail:
            raise StoreError("disk full")
        self.writes.append(list(items))


async def add_spread(behind: WriteBehind[int], count: int, gap: float) -> None:
    async def one(item: int) -> None:
        await asyncio.sleep(item * gap)
        await behind.add(item)

    await asyncio.gather(*(one(item) for item in range(count)))


def test_items_arriving_during_a_write_go_in_the_next() -> None:
    # Timers fire in the order of their deadlines: items 1-4 (at 2-8 ms) arrive
    # while the first write (10 ms) is under way, however slow the machine.
    recorder = Recorder()
    asyncio.run(add_spread(WriteBehind(recorder.write), 5, 0.002))
    assert recorder.writes == [[0], [1, 2, 3, 4]]


def test_linger_gathers_items_that_arrive_steadily() -> None:
    # Items at 0-9 ms, the write held back until 50 ms: one write.
    recorder = Recorder()
    asyncio.run(add_spread(WriteBehind(recorder.write, linger=0.05), 10, 0.001))
    assert recorder.writes == [list(range(10))]


def test_a_failed_write_fails_every_add_in_it() -> None:
    async def scenario() -> list[BaseException | None]:
        behind = WriteBehind(Recorder(fail=True).write, linger=0.01)
        return await asyncio.gather(*(behind.add(i) for i in range(3)), return_exceptions=True)

    errors = asyncio.run(scenario())
    assert [type(e) for e in errors] == [StoreError] * 3


def test_an_add_waits_for_its_write() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        await WriteBehind(recorder.write, linger=0.01).add(7)
        assert recorder.writes == [[7]]

    asyncio.run(scenario())


@pytest.mark.parametrize("linger", [0, 0.01])
def test_nothing_is_written_without_items(linger: float) -> None:
    recorder = Recorder()
    WriteBehind(recorder.write, linger=linger)
    assert recorder.writes == []
