"""BodyDeadlines.enter registers the running task, wherever the sweep was armed.

``enter`` finds the task by the sweep's loop (no ``getpid`` system call a request); these tests
hold it to the task that is really running when the app runs on another loop or thread.
"""

from __future__ import annotations

import asyncio
import threading

from slipway.serving.middleware import BodyDeadlines


def test_enter_registers_the_running_task_on_the_sweeps_loop() -> None:
    deadlines = BodyDeadlines(10.0)

    async def main() -> None:
        deadlines.start()
        try:
            task = deadlines.enter(123.0)
            assert task is asyncio.current_task()
            assert deadlines.waiting == {task: 123.0}
            assert deadlines.loop is asyncio.get_running_loop()
        finally:
            deadlines.stop()

    asyncio.run(main())


def test_enter_on_a_new_loop_arms_the_sweep_there() -> None:
    deadlines = BodyDeadlines(10.0)

    async def first() -> None:
        deadlines.start()  # then this loop closes with the sweep still "armed" on it

    asyncio.run(first())

    async def second() -> None:
        task = deadlines.enter(1.0)
        assert task is asyncio.current_task()
        assert deadlines.loop is asyncio.get_running_loop()
        deadlines.waiting.clear()
        deadlines.stop()

    asyncio.run(second())


def test_enter_from_another_thread_takes_that_threads_task() -> None:
    deadlines = BodyDeadlines(10.0)
    busy, done = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    async def sweeping() -> None:  # the sweep's loop, running a task of its own meanwhile
        deadlines.start()
        seen["sweep task"] = asyncio.current_task()
        busy.set()
        done.wait(10)  # blocks in the task: it stays the current task of this loop
        deadlines.stop()

    thread = threading.Thread(target=asyncio.run, args=(sweeping(),))
    thread.start()
    try:
        assert busy.wait(10)

        async def request() -> None:
            task = deadlines.enter(5.0)
            seen["request task"] = task
            assert task is asyncio.current_task()
            assert task is not seen["sweep task"]

        asyncio.run(request())
    finally:
        done.set()
        thread.join(10)
    assert seen["request task"] in deadlines.waiting


def test_a_registered_task_past_its_deadline_is_cancelled_as_timed_out() -> None:
    deadlines = BodyDeadlines(0.05)

    async def main() -> str:
        deadlines.start()
        try:
            task = deadlines.enter(0.0)  # already past
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                del deadlines.waiting[task]
                timeout = deadlines.timed_out(task)
                assert timeout is not None
                return str(timeout)
            return "not cancelled"
        finally:
            deadlines.stop()

    assert "0.05 s" in asyncio.run(asyncio.wait_for(main(), 10))
