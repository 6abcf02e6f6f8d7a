"""The ASGI handler: Django's, except that an event stream keeps only what streaming needs once it starts.

Django's ASGIHandler runs each request inside a ThreadSensitiveContext: the first thread-sensitive
`sync_to_async` of the request (a sync middleware, the request_started signal) starts a thread of its own for
that request, and the thread lives until the request ends, which for a stream is when the stream closes. So
every open stream held an idle thread (514 threads for 500 subscribers), and the request with everything the
middleware hung on it, Django's response object and the URL resolver's list of every pattern it tried (about
7 KiB per stream alone): 82-97 KiB of worker memory per open stream in all (bench/events).

Here a stream (canvas_project.sse.responses.sse_response marks its response) is opened exactly as Django
opens any request: middleware both ways, the view authenticating and authorizing it. Then the handler closes
the request's database connections on the request's thread and lets the thread go, drops the request, and
sends the stream's chunks itself; the stream needs no thread (its work runs on the loop, or briefly on the
loop's shared pool). When it ends, the response is closed as Django closes any (request_finished).

Every other response is handled exactly as Django does (the same code as its `handle`, Django 5.2).
"""

from __future__ import annotations

import asyncio
import contextlib

from asgiref.sync import SyncToAsync, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import connections
from django.http.response import ResponseHeaders
from django.urls import set_script_prefix


class StreamingASGIHandler(ASGIHandler):
    async def handle(self, scope, receive, send):
        """Django's ASGIHandler.handle, with a stream sent by `send_stream` (and not held by this frame)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            try:
                if getattr(response, "sse_stream", None) is not None:
                    body_file.close()
                    request = None  # noqa: F841 - this frame no longer holds it while the stream is open
                    await self.send_stream(response, send)
                else:
                    await self.send_response(response, send)
            except asyncio.CancelledError:
                # Client disconnected during send_response (ignore exception).
                pass
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        del request  # the task holds it for as long as it needs it
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            await sync_to_async(response.close)()

        body_file.close()

    async def send_stream(self, response, send) -> None:
        """Send an event stream: its head, then each chunk as it comes, holding neither the request, its
        thread nor the response's headers meanwhile."""
        _close_request(response)
        await release_request_thread()
        headers = [(str(name).encode("ascii"), str(value).encode("latin1")) for name, value in response.items()]
        headers += [(b"Set-Cookie", c.output(header="").encode("ascii").strip()) for c in response.cookies.values()]
        stream = response.sse_stream
        response.sse_stream = None
        response.headers = ResponseHeaders({})
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        del headers
        async with contextlib.aclosing(stream) as content:
            async for part in content:
                body = part if isinstance(part, bytes) else part.encode()
                await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body"})


def _close_request(response) -> None:
    """Run the response's closers now (the request's close: a GET stream has no uploaded file to close), so
    that nothing holds the request (a loop variable here would, for the whole stream)."""
    for closer in response._resource_closers:
        closer()
    response._resource_closers.clear()


async def release_request_thread() -> None:
    """Close the current request context's database connections on its thread, then let that thread end."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None:
        return
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is None:
        return  # no thread-sensitive work ran: there is no thread to give up
    await asyncio.get_running_loop().run_in_executor(executor, connections.close_all)
    executor.shutdown(wait=False)
