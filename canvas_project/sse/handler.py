"""The ASGI handler: Django's, except that an event stream gives up its request thread once it starts.

Django's ASGIHandler runs each request inside a ThreadSensitiveContext: the first thread-sensitive
`sync_to_async` of the request (a sync middleware, the request_started signal) starts a thread of its own for
that request, and the thread lives until the request ends, which for a stream is when the stream closes. So
every open stream held an idle thread (514 threads for 500 subscribers, most of the ~97 KiB each stream cost:
bench/events). Here, once the view has answered with an async streaming response (the middleware has run both
ways by then), the thread closes its database connections and is let go; the stream itself needs no thread
(canvas_project.sse.responses: its work runs on the loop, or briefly on the loop's shared pool). Anything
thread-sensitive after that (request_finished when the stream ends) gets a fresh thread for its moment.

Every other response is handled exactly as Django does.
"""

from __future__ import annotations

import asyncio

from asgiref.sync import SyncToAsync
from django.core.handlers.asgi import ASGIHandler
from django.db import connections


class StreamingASGIHandler(ASGIHandler):
    async def run_get_response(self, request):
        response = await super().run_get_response(request)
        if getattr(response, "streaming", False) and getattr(response, "is_async", False):
            await release_request_thread()
        return response


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
