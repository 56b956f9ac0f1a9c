"""Pure ASGI middleware: request metrics for every route, a concurrency limit for infer only.

Pure ASGI (not ``BaseHTTPMiddleware``) so it adds microseconds, not a task per request. The
concurrency limit applies to ``POST /v2/models/{name}/infer`` alone: probes and ``/metrics``
always answer, even when inference is saturated. The limit is per worker process; a request
beyond it gets 429 at once instead of queueing behind the others (callers retry, the HPA scales).

An infer body must arrive within ``body_timeout`` seconds of the request reaching the app: the
``receive`` the app reads through waits at most for what is left of that time, then raises
:class:`~slipway.serving.errors.RequestTimeout` (408, connection closed), so a slow sender
cannot hold one of the ``max_concurrency`` slots for longer than that. :class:`BodyDeadlines`
enforces it with one timer per worker rather than one per request: ``asyncio.wait_for`` made a
task per ``receive()`` and ``asyncio.timeout_at`` a loop timer (~8 µs a request measured in the
server, though the body has almost always arrived with the headers), and a body that is there
already costs no registration at all.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import types
from typing import Any

import orjson

from slipway.serving.errors import RequestTimeout
from slipway.serving.metrics import INFER_ROUTE, ServerMetrics

UNMATCHED_ROUTE = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REJECT_BODY = orjson.dumps({"error": "too many concurrent requests; retry shortly"})


def is_infer(method: str, path: str) -> bool:
    """Whether ``method path`` is ``POST /v2/models/{name}/infer`` (the limited route)."""
    return (
        method == "POST"
        and path.startswith("/v2/models/")
        and path.endswith("/infer")
        and path.count("/") == 4  # /v2/models/{name}/infer, nothing deeper
    )


class BodyDeadlines:
    """Infer requests waiting for body bytes, and the one timer that times out the late ones.

    Deadlines are :func:`time.perf_counter` values (the clock the middleware already read, so
    a request takes no loop lookup: each ``asyncio.get_running_loop()`` is a ``getpid``
    system call). :meth:`receive` first runs ``receive()`` without waiting: when the message is
    already there, the usual case, it returns it and registers nothing. Otherwise the request's
    task waits registered with its deadline; a timer, armed only while some request is
    registered, looks every ``tick`` seconds (a tenth of the timeout, at most 0.1 s) and
    cancels the task of each request past its deadline, a cancellation that :meth:`receive`
    turns into :class:`~slipway.serving.errors.RequestTimeout`. A request thus times out
    between its deadline and one tick later.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.tick = min(0.1, timeout / 10)
        self.waiting: dict[asyncio.Task, float] = {}  # task -> deadline (perf_counter)
        self.expired: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the sweep's (arm's running loop)
        self.thread: int | None = None  # the thread that runs it
        self._always = False  # start() was called: the sweep runs every tick until stop()
        self.idle = True  # no sweep armed: arm() before registering in waiting

    def start(self) -> None:
        """Sweep every tick on the running loop until :meth:`stop` (the app's lifespan).

        The infer short way then registers its task in :attr:`waiting` for the time it reads
        (:func:`slipway.serving.infer.answer_infer`) without arming anything.
        """
        self.stop()
        self._always = True
        self.arm()

    def arm(self) -> None:
        """Sweep a tick from now on the running loop (again while requests are registered)."""
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self._timer = self.loop.call_later(self.tick, self._sweep)
        self.idle = False

    def enter(self, deadline: float) -> asyncio.Task:
        """Register the running task as reading its body until ``deadline`` (``perf_counter``).

        The caller deletes it from :attr:`waiting` once the body is read. The task is looked
        up by the sweep's loop when this thread runs that loop: ``asyncio.current_task()``
        without it looks the running loop up first, which on Python 3.11 is a ``getpid``
        system call (it was the server's one system call a request besides reading and
        writing). Any other case (no sweep armed, the app run on another loop or thread)
        arms a sweep on the running loop first.
        """
        task = (
            asyncio.current_task(self.loop)
            if not self.idle and self.thread == threading.get_ident()
            else None
        )
        if task is None:  # no sweep on this loop (or no task there, a loop gone): one here
            self.arm()
            task = asyncio.current_task()
        self.waiting[task] = deadline
        return task

    def stop(self) -> None:
        """Stop sweeping (the app's shutdown)."""
        self._always = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.idle = True

    def timed_out(self, task: asyncio.Task) -> RequestTimeout | None:
        """The timeout of ``task``, cancelled by the sweep, or ``None`` (another cancellation)."""
        if task not in self.expired:
            return None
        self.expired.discard(task)
        task.uncancel()
        return RequestTimeout(
            f"the request body must arrive within {self.timeout:g} s of its headers"
        )

    async def receive(self, receive: Any, deadline: float) -> dict:
        """The next ASGI message, or RequestTimeout once ``perf_counter`` passes ``deadline``."""
        pending = receive()
        if type(pending) is not types.CoroutineType:  # an awaitable of another kind: wait
            return await self._wait(pending, None, deadline)
        try:
            first = pending.send(None)  # runs until the message or its first wait
        except StopIteration as done:
            return done.value  # there already: nothing to time
        except BaseException:
            pending.close()
            raise
        return await self._wait(pending, _Resumed(pending, first), deadline)

    async def _wait(self, pending: Any, resumed: Any, deadline: float) -> dict:
        awaitable = pending if resumed is None else resumed
        task = asyncio.current_task()
        if task is None:  # not in a task (no server runs an app so): a timer of its own
            async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                return await awaitable
        self.waiting[task] = deadline
        loop = task.get_loop()
        if self._timer is None or self.loop is not loop:  # a new loop: tests run several
            self.arm()
        try:
            return await awaitable
        except asyncio.CancelledError:
            timeout = self.timed_out(task)
            if timeout is None:
                raise
            raise timeout from None
        finally:
            self.waiting.pop(task, None)

    def _sweep(self) -> None:
        now = time.perf_counter()
        for task, deadline in list(self.waiting.items()):
            if task.done():  # its loop went away while it waited
                del self.waiting[task]
            elif deadline <= now and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        again = self._always or self.waiting
        self._timer = self.loop.call_later(self.tick, self._sweep) if again else None
        self.idle = self._timer is None


class _Resumed:
    """Awaits the rest of a coroutine that was run up to its first suspension by hand.

    ``await _Resumed(coro, first)`` is what ``await coro`` would have been after ``coro``
    yielded ``first``: what the task sends or throws in (a cancellation) goes to ``coro``, and
    its return value is the result.
    """

    __slots__ = ("coro", "first")

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Any:
        coro, value = self.coro, self.first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation: handed on to the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value


class ServingMiddleware:
    """Request metrics for every route and the per-worker concurrency limit of infer.

    Two ways in, sharing the limit, the deadlines and the metric tallies: :meth:`__call__`, the
    ASGI middleware around FastAPI's stack (every route; :meth:`wrap` is what Starlette calls to
    place this one instance there), and :func:`slipway.serving.infer.answer_infer`, the short
    way the app sends infer requests by, which reads ``active``, ``deadlines`` and
    :meth:`reject` from here.

    Args:
        app: the ASGI app to wrap (``None`` until :meth:`wrap`).
        metrics: where requests are counted and timed.
        max_concurrency: infer requests in progress in this worker beyond which infer is 429.
        body_timeout: seconds an infer body has to arrive (408 after).
    """

    def __init__(
        self,
        app: Any,
        metrics: ServerMetrics,
        max_concurrency: int,
        body_timeout: float,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_concurrency = max_concurrency
        self.body_timeout = body_timeout
        self.active = 0  # infer requests in progress in this worker (in the in-flight gauge)
        self.deadlines = BodyDeadlines(body_timeout)
        metrics.infer_inflight = self

    def wrap(self, app: Any) -> ServingMiddleware:
        """Wrap ``app`` (Starlette calls this when it builds the middleware stack)."""
        self.app = app
        return self

    async def reject(self, send: Any, method: str, started: float) -> None:
        """Answer 429 (beyond ``max_concurrency``) and count the request and its rejection."""
        self.metrics.rejected.labels("concurrency").inc()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_REJECT_BODY)).encode()),
                    (b"retry-after", b"1"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _REJECT_BODY})
        self.metrics.request_done(INFER_ROUTE, method, 429, time.perf_counter() - started)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Handle one ASGI connection: time and count it, or answer 429 beyond the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"] if scope["method"] in _METHODS else "other"
        infer = is_infer(method, path)
        if infer and self.active >= self.max_concurrency:
            await self.reject(send, method, started)
            return

        status = 500  # an exception before the response started is a 5xx

        async def send_with_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if infer:
            app_receive = functools.partial(
                self.deadlines.receive, receive, started + self.body_timeout
            )
        else:
            app_receive = receive

        if infer:  # in flight: infer requests in active (the gauge adds it), the others here
            self.active += 1
        else:
            self.metrics.inflight_now += 1
        try:
            await self.app(scope, app_receive, send_with_status)
        finally:
            if infer:
                self.active -= 1
            else:
                self.metrics.inflight_now -= 1
            route = scope.get("route")
            # FastAPI sets scope["route"] for its own routes only; infer takes :meth:`infer`
            template = getattr(route, "path", None) or (INFER_ROUTE if infer else UNMATCHED_ROUTE)
            self.metrics.request_done(template, method, status, time.perf_counter() - started)
