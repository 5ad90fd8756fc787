"""The flush queue: connections with something to send are flushed once the window has passed,
in slices that let the event loop run in between, and rounds that the hub can wait for."""

from __future__ import annotations

import asyncio

from realtime.connection import FLUSH_SLICE, FlushQueue, FrameCache


class Outbox:
    """Stands in for a Connection: the queue only calls ``flush(frames)`` and reads ``id``."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.id = name
        self.log = log

    def flush(self, frames: FrameCache) -> None:
        self.log.append(self.id)


async def test_a_round_is_flushed_in_slices_with_the_loop_running_in_between() -> None:
    queue = FlushQueue(0.005)
    log: list[str] = []
    connections = [Outbox(f"c{n}", log) for n in range(FLUSH_SLICE * 2 + 10)]
    for connection in connections:
        queue.add(connection)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert log == []  # nothing before the window has passed

    turns: list[int] = []  # how many were flushed each time the "reader" got a turn

    async def reader() -> None:
        # What the hub's Redis reader does between slices: it gets its turn mid-round.
        while len(log) < len(connections):
            turns.append(len(log))
            await asyncio.sleep(0)

    async with asyncio.timeout(2):
        await reader()
    assert log == [c.id for c in connections]  # each once, in the order they asked
    assert FLUSH_SLICE in turns and 2 * FLUSH_SLICE in turns  # the reader ran between the slices
    assert queue.rounds_done == 1


async def test_round_done_returns_at_once_when_no_round_is_under_way() -> None:
    queue = FlushQueue(0.005)
    async with asyncio.timeout(0.5):
        await queue.round_done()
    assert queue.rounds_done == 0


async def test_a_connection_added_during_a_round_waits_for_the_next_window() -> None:
    queue = FlushQueue(0.02)
    log: list[str] = []
    first = [Outbox(f"a{n}", log) for n in range(FLUSH_SLICE * 3)]
    late = Outbox("late", log)
    for connection in first:
        queue.add(connection)  # type: ignore[arg-type]
    async with asyncio.timeout(2):
        while not log:  # noqa: ASYNC110 - polling between slices is the point
            await asyncio.sleep(0)
    assert len(log) == FLUSH_SLICE  # the window passed and one slice went; the round goes on
    queue.add(late)  # type: ignore[arg-type]
    await queue.round_done()
    assert log == [c.id for c in first]  # the round ended without it: it waits for its own window
    await asyncio.sleep(0.05)
    assert log[-1] == "late" and queue.rounds_done == 2
