"""A server shutdown is never lost by a connection whose awaited step completes at that moment."""

from __future__ import annotations

import asyncio

import pytest

from openitb.telemetry.tcp import _within


def test_a_cancellation_arriving_as_the_awaited_step_completes_is_not_lost() -> None:
    # asyncio.wait_for on Python 3.11 returned the result and dropped the cancellation: the
    # connection went on to wait out its idle timeout and ServerThread.stop() timed out.
    async def main() -> str:
        step: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def connection() -> str:
            await _within(step, 10)
            await asyncio.sleep(30)  # the next read: reached only if the shutdown was lost
            return "cancellation lost"

        task = asyncio.create_task(connection())
        await asyncio.sleep(0)  # the connection now waits on its step
        step.set_result(1)  # the step completes ...
        task.cancel()  # ... in the same loop iteration as the shutdown
        try:
            return await asyncio.wait_for(asyncio.shield(task), 2)
        except asyncio.CancelledError:
            return "cancelled"

    assert asyncio.run(main()) == "cancelled"


def test_within_times_out() -> None:
    async def main() -> None:
        await _within(asyncio.sleep(5), 0.01)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
