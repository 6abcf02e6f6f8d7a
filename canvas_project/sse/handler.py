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

The view runs in a task of its own raced against Django's disconnect listener, as in Django; once it has
answered with a stream, that task ends and the stream is sent from the server's task that called the
application, which the listener cancels when the client goes away. An open stream so keeps two tasks and no
`asyncio.wait` (each task, with its frames and callbacks, is about 1 KiB of every idle subscriber's memory:
bench/events --idle, docs/performance.md).

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
        """Django's ASGIHandler.handle; a stream is sent by `send_stream_until_disconnect` from this task."""
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
            if getattr(response, "sse_stream", None) is not None:
                return response  # handle() sends it, from its own task, once this one is gone
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                # Client disconnected during send_response (ignore exception).
                pass
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        del request, process_request  # the task holds what it needs
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        listener, worker = tasks
        if _is_stream(worker) and not listener.done():
            # A stream: sent from this task, the disconnect listener left as the only other one (no task of its
            # own, no asyncio.wait, no request, no body file held while it is open: bench/events --idle).
            response = worker.result()
            del tasks, worker
            body_file.close()
            del body_file
            await self.send_stream_until_disconnect(response, send, listener)
            await sync_to_async(response.close)()
            return
        del listener, worker
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

    async def send_stream_until_disconnect(self, response, send, listener: asyncio.Task) -> None:
        """Send an event stream from the current task: its head, then each chunk as it comes, holding neither
        the request, its thread nor the response's headers meanwhile. Cancelled when `listener` (Django's
        listen_for_disconnect) ends: the client went away (or sent what a request may not send after its
        body: that AssertionError is raised, as Django does)."""
        task = asyncio.current_task()
        streaming = True

        def on_disconnect(_listener) -> None:
            if streaming:
                task.cancel()

        listener.add_done_callback(on_disconnect)
        stream, release = response.sse_stream, response.sse_release
        response.sse_stream = response.sse_release = None
        try:
            _close_request(response)
            await release_request_thread()
            headers = [(str(name).encode("ascii"), str(value).encode("latin1")) for name, value in response.items()]
            headers += [(b"Set-Cookie", c.output(header="").encode("ascii").strip()) for c in response.cookies.values()]
            response.headers = ResponseHeaders({})
            response.streaming_content = ()  # the unstarted wrapper Django's own handler would iterate
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            del headers
            async with contextlib.aclosing(stream) as content:
                async for part in content:
                    body = part if isinstance(part, bytes) else part.encode()
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body"})
        except asyncio.CancelledError:
            if not listener.done():
                raise  # cancelled from outside (the server shuts down), not by the client going away
            task.uncancel()
        finally:
            streaming = False
            if release is not None:
                release()
            listener.remove_done_callback(on_disconnect)
            if not listener.done():
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
        if not listener.cancelled() and isinstance(listener.exception(), AssertionError):
            raise listener.exception()


def _is_stream(task: asyncio.Task) -> bool:
    """Whether the view's task returned an event stream (canvas_project.sse.responses.sse_response)."""
    if not task.done() or task.cancelled() or task.exception() is not None:
        return False
    return getattr(task.result(), "sse_stream", None) is not None


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
